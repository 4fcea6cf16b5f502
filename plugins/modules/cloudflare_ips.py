#!/usr/bin/python
"""Cloudflare's published IP ranges, or a fallback list when the API cannot say."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudflare_ips
short_description: Read Cloudflare's published IP ranges, falling back to a pinned list
description:
  - Asks Cloudflare's API for the ranges its proxies connect from (C(GET /ips), no
    token needed) through the official C(cloudflare) Python SDK, for nginx's realip
    module and the origin lock of the C(nginx_edge) role.
  - Runs on the controller (delegated to localhost, with the Python that has the SDK).
    Reads only; check mode runs it as usual.
  - When the API cannot be reached, answers with an error, or returns something that is
    not a plausible list of ranges (empty, not CIDR, or wider than a /8 or an IPv6 /16,
    which would trust much of the internet), the module warns and returns
    I(fallback) instead, with C(source=fallback).
options:
  base_url:
    description:
      - API base URL, such as C(https://api.cloudflare.com/client/v4). Empty falls back
        to the C(CLOUDFLARE_BASE_URL) environment variable, then the real API.
    type: str
    default: ""
  fallback:
    description: Ranges to return when the API's answer cannot be used.
    type: list
    elements: str
    required: true
  fetch:
    description: Ask the API at all; false returns I(fallback) without a warning.
    type: bool
    default: true
  timeout:
    description: Seconds for the request (the SDK retries twice within it).
    type: int
    default: 10
author: Gantry contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read Cloudflare's ranges
  cloudflare_ips:
    fallback: "{{ nginx_edge_cloudflare_fallback_ranges }}"
  delegate_to: localhost
  run_once: true
  register: cloudflare_ranges
"""

RETURN = r"""
ranges:
  description: IPv4 then IPv6 ranges, normalised (host bits cleared), without duplicates.
  returned: always
  type: list
  elements: str
source:
  description: C(api) when the ranges come from the API, C(fallback) otherwise.
  returned: always
  type: str
etag:
  description: Cloudflare's digest of the list, when the API gave one.
  returned: when source is api
  type: str
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule

# Cloudflare's widest published ranges are a /12 and an IPv6 /29; anything far wider is
# a misconfigured stand-in or a tampered answer, and would trust much of the internet.
WIDEST_PREFIX = {4: 8, 6: 16}


def normalise(cidrs):
    """Return the ranges as canonical CIDR strings, IPv4 first; ValueError if any is bad."""
    seen = {}
    for cidr in cidrs:
        network = ipaddress.ip_network(str(cidr).strip(), strict=False)
        if network.prefixlen < WIDEST_PREFIX[network.version]:
            raise ValueError(f"{cidr} is wider than /{WIDEST_PREFIX[network.version]}")
        seen.setdefault(str(network), network)
    return [str(n) for n in sorted(seen.values(), key=lambda n: (n.version, n))]


def fetch(base_url, timeout):
    """Return (ranges, etag) from the API; raise on anything unusable."""
    from cloudflare import Cloudflare, omit

    kwargs = {"base_url": base_url} if base_url else {}
    # The endpoint needs no token: the Authorization header is left out explicitly (the
    # SDK otherwise refuses to send a request without credentials).
    with Cloudflare(timeout=timeout, max_retries=2, **kwargs) as client:
        answer = client.ips.list(extra_headers={"Authorization": omit})
    if answer is None:
        raise ValueError("the API returned no result")
    cidrs = list(answer.ipv4_cidrs or []) + list(answer.ipv6_cidrs or [])
    if not cidrs:
        raise ValueError("the API returned no ranges")
    return normalise(cidrs), getattr(answer, "etag", None)


def main():
    module = AnsibleModule(
        argument_spec={
            "base_url": {"type": "str", "default": ""},
            "fallback": {"type": "list", "elements": "str", "required": True},
            "fetch": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        fallback = normalise(params["fallback"])
    except ValueError as exc:
        module.fail_json(msg=f"fallback holds a range that is not valid: {exc}")
    if not fallback:
        module.fail_json(msg="fallback is empty: nothing to trust if the API cannot be reached")
    if not params["fetch"]:
        module.exit_json(changed=False, ranges=fallback, source="fallback")
    try:
        ranges, etag = fetch(params["base_url"], params["timeout"])
    except ImportError:
        module.fail_json(
            msg="the cloudflare Python SDK is missing on the controller "
            "(pip install -r requirements.txt in the Python that runs Ansible)"
        )
    except Exception as exc:  # noqa: BLE001 - any failure means: use the pinned list
        module.warn(
            f"Cloudflare's IP ranges could not be read ({type(exc).__name__}: {exc}); "
            f"using the {len(fallback)} pinned ranges of nginx_edge_cloudflare_fallback_ranges"
        )
        module.exit_json(changed=False, ranges=fallback, source="fallback")
    result = {"changed": False, "ranges": ranges, "source": "api"}
    if etag:
        result["etag"] = etag
    module.exit_json(**result)


if __name__ == "__main__":
    main()
