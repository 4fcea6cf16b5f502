#!/usr/bin/python
# Copyright: Gantry contributors
# MIT License (see the repository)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudflare_purge
short_description: Purge Cloudflare's cache by URL, by prefix or entirely
description:
  - Purges cached content of a zone through the official C(cloudflare) Python SDK, by URL
    list, by URL prefix, or everything.
  - Lists are de-duplicated and sent in batches of at most O(batch_size) items, one kind
    per call, as the API requires.
  - Reports C(changed) only when it purged something; empty lists make no API call.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
requirements:
  - cloudflare >= 4.3 (the official Cloudflare Python SDK)
options:
  files:
    description:
      - Absolute C(http://) or C(https://) URLs to purge, exactly as they are requested
        (the query string is part of the cache key).
    type: list
    elements: str
    default: []
  prefixes:
    description:
      - URL prefixes to purge, a host followed by a path such as C(www.example.com/static/).
        A leading C(https://) or C(http://) is dropped, as the API wants none.
    type: list
    elements: str
    default: []
  purge_everything:
    description:
      - Purge all cached content of the zone. Cannot be combined with O(files) or O(prefixes).
    type: bool
    default: false
  batch_size:
    description:
      - Most URLs or prefixes sent in one call.
      - 30 is the per-call limit Cloudflare documented for years for Free, Pro and Business
        zones and is still accepted where newer documentation allows 100 operations per
        request (500 URLs on Enterprise). Raise it only if your plan allows more.
    type: int
    default: 30
extends_documentation_fragment:
  - gantry.deploy.gantry_cloudflare
  - gantry.deploy.gantry_cloudflare.check_no_diff
notes:
  - The token needs C(Zone > Cache Purge > Purge) on the zone.
  - Purge has its own per-plan rate limit (a few requests per second or minute), whose
    short waits O(rate_limit_max_wait) sleeps through.
  - Purging does not clear browsers' caches.
  - If a batch fails, the earlier batches stay purged; purging again is harmless.
seealso:
  - name: Purge cache
    description: Cloudflare documentation of purge methods and limits.
    link: https://developers.cloudflare.com/cache/how-to/purge-cache/
"""

EXAMPLES = r"""
- name: Purge the static files that changed and the HTML routes that embed them
  cloudflare_purge:
    zone_name: example.com
    api_token: "{{ vault_cloudflare_api_token }}"
    files: "{{ s3_static_changed_urls + html_urls }}"
  vars:
    html_urls: [https://www.example.com/, https://www.example.com/faq]
  delegate_to: localhost
  run_once: true

- name: Purge everything under /static/
  cloudflare_purge:
    zone_name: example.com
    prefixes:
      - www.example.com/static/
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
zone_id:
  description: Id of the zone; empty when there was nothing to purge.
  returned: always
  type: str
purged_files:
  description: URLs purged (or that would be, in check mode), de-duplicated.
  returned: always
  type: list
  elements: str
purged_prefixes:
  description: Prefixes purged (or that would be, in check mode), without scheme.
  returned: always
  type: list
  elements: str
purged_everything:
  description: Whether everything was purged (or would be).
  returned: always
  type: bool
requests:
  description: Purge calls made (or that would be made, in check mode).
  returned: always
  type: int
"""

from urllib.parse import urlsplit

from ansible_collections.gantry.deploy.plugins.module_utils.gantry_cloudflare import (
    CloudflareAPIError,
    run_cloudflare_module,
)

PERM_PURGE = "Zone > Cache Purge > Purge"
MAX_BATCH = 500


def unique(items):
    return list(dict.fromkeys(items))


def check_files(files):
    for url in files:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"files must be absolute http(s) URLs, got {url!r}")
    return unique(files)


def check_prefixes(prefixes):
    cleaned = []
    for prefix in prefixes:
        bare = prefix.split("://", 1)[1] if "://" in prefix else prefix
        if not bare or bare.startswith("/") or "?" in bare or "#" in bare:
            raise ValueError(f"prefixes must be a host followed by a path, without query or "
                             f"fragment (www.example.com/static/), got {prefix!r}")
        cleaned.append(bare)
    return unique(cleaned)


def batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def run(module, api):
    params = module.params
    size = params["batch_size"]
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    files = check_files(params["files"])
    prefixes = check_prefixes(params["prefixes"])
    everything = params["purge_everything"]
    if everything and (files or prefixes):
        raise ValueError("purge_everything cannot be combined with files or prefixes")

    calls = [("files", chunk) for chunk in batches(files, size)]
    calls += [("prefixes", chunk) for chunk in batches(prefixes, size)]
    if everything:
        calls.append(("purge_everything", True))
    result = dict(changed=bool(calls), zone_id="", purged_files=[], purged_prefixes=[],
                  purged_everything=False, requests=0)
    if not calls:
        return result
    result["zone_id"] = zone_id = api.zone_id()
    if module.check_mode:
        result.update(purged_files=files, purged_prefixes=prefixes,
                      purged_everything=everything, requests=len(calls))
        return result

    for number, (kind, value) in enumerate(calls, start=1):
        try:
            api.call(f"purge batch {number} of {len(calls)} ({kind})", PERM_PURGE,
                     api.client.cache.with_raw_response.purge, zone_id=zone_id, **{kind: value})
        except CloudflareAPIError as exc:
            done = number - 1
            exc.msg += (f" {done} of {len(calls)} purge calls had succeeded before this one "
                        "(purging again is harmless).")
            exc.details = result
            raise
        result["requests"] = number
        if kind == "files":
            result["purged_files"].extend(value)
        elif kind == "prefixes":
            result["purged_prefixes"].extend(value)
        else:
            result["purged_everything"] = True
    return result


def main():
    run_cloudflare_module(
        {
            "files": dict(type="list", elements="str", default=[]),
            "prefixes": dict(type="list", elements="str", default=[]),
            "purge_everything": dict(type="bool", default=False),
            "batch_size": dict(type="int", default=30),
        },
        run,
    )


if __name__ == "__main__":
    main()
