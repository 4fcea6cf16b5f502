#!/usr/bin/python
# Copyright: Gantry contributors
# MIT License (see the repository)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudflare_zone_settings
short_description: Set Cloudflare zone settings, changing only those that differ
description:
  - Sets zone settings by name (C(browser_cache_ttl), C(cache_level), C(always_online),
    C(brotli), C(development_mode) or any other setting the API knows) through the
    official C(cloudflare) Python SDK.
  - Reads every named setting first and fails before writing anything if one is unknown
    or not editable on the zone's plan; then PATCHes only the settings whose value differs.
  - If a write fails part-way, the settings already changed are put back to their previous
    values, so a failed run leaves the zone as it found it whenever the API allows.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
requirements:
  - cloudflare >= 4.3 (the official Cloudflare Python SDK)
options:
  settings:
    description:
      - Setting name to wanted value, as the API names them.
      - Booleans are sent as C(on)/C(off) for on/off settings, and numeric strings as
        numbers for numeric settings, so YAML's C(on) and Jinja's strings compare equal.
    type: dict
    required: true
extends_documentation_fragment:
  - gantry.deploy.gantry_cloudflare
  - gantry.deploy.gantry_cloudflare.check_and_diff
notes:
  - The token needs C(Zone > Zone Settings > Edit) on the zone.
  - Runs where the task runs; delegate it to C(localhost) with C(run_once).
  - One API call per setting read and per setting changed.
seealso:
  - module: gantry.deploy.cloudflare_cache_rules
"""

EXAMPLES = r"""
- name: Caching settings of the zone
  cloudflare_zone_settings:
    zone_name: example.com
    api_token: "{{ vault_cloudflare_api_token }}"
    settings:
      browser_cache_ttl: 14400
      cache_level: aggressive
      brotli: "on"
      always_online: "off"
      development_mode: "off"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
zone_id:
  description: Id of the zone.
  returned: success
  type: str
settings:
  description: Value of every named setting after the run (as it would be, in check mode).
  returned: success
  type: dict
  sample: {browser_cache_ttl: 14400, cache_level: aggressive, brotli: "on"}
changed_settings:
  description: Settings that changed (or would), with their values before and after.
  returned: success
  type: dict
  sample: {browser_cache_ttl: {before: 14400, after: 86400}}
"""

from ansible_collections.gantry.deploy.plugins.module_utils.gantry_cloudflare import (
    CloudflareAPIError,
    run_cloudflare_module,
)

PERM_READ = "Zone > Zone Settings > Read"
PERM_EDIT = "Zone > Zone Settings > Edit"


def coerce(wanted, current):
    """Bring a YAML/Jinja value to the API's type for this setting, judged by its current value."""
    if isinstance(wanted, bool) and current in ("on", "off"):
        return "on" if wanted else "off"
    if (isinstance(current, int) and not isinstance(current, bool)
            and isinstance(wanted, str) and wanted.strip().lstrip("-").isdigit()):
        return int(wanted)
    return wanted


def run(module, api):
    wanted = module.params["settings"]
    if not wanted:
        raise CloudflareAPIError("settings must name at least one setting")
    zone_id = api.zone_id()
    settings = api.client.zones.settings.with_raw_response

    current = {}
    not_editable = []
    for name in wanted:
        found = api.call(f"read zone setting {name}", PERM_READ, settings.get, name,
                         zone_id=zone_id) or {}
        current[name] = found.get("value")
        if found.get("editable") is False and coerce(wanted[name], current[name]) != current[name]:
            not_editable.append(name)
    if not_editable:
        raise CloudflareAPIError(
            f"not editable on this zone (plan or account restriction): {', '.join(not_editable)}; "
            "nothing was changed")

    target = {name: coerce(value, current[name]) for name, value in wanted.items()}
    changes = {name: {"before": current[name], "after": target[name]}
               for name in wanted if target[name] != current[name]}
    result = dict(changed=bool(changes), zone_id=zone_id, settings=dict(current),
                  changed_settings=changes)
    if module._diff:
        result["diff"] = dict(before={n: current[n] for n in changes},
                              after={n: target[n] for n in changes})
    if module.check_mode:
        result["settings"].update(target)
        return result

    applied = []
    for name in changes:
        try:
            stored = api.call(f"change zone setting {name}", PERM_EDIT, settings.edit, name,
                              zone_id=zone_id, value=target[name]) or {}
        except CloudflareAPIError as exc:
            exc.msg += restore(api, zone_id, applied, current)
            raise
        applied.append(name)
        result["settings"][name] = stored.get("value", target[name])
    return result


def restore(api, zone_id, applied, previous):
    """Put back what this run already changed; returns the sentence saying how it went."""
    if not applied:
        return " Nothing was changed."
    failed = []
    for name in reversed(applied):
        try:
            api.call(f"restore zone setting {name}", PERM_EDIT,
                     api.client.zones.settings.with_raw_response.edit, name,
                     zone_id=zone_id, value=previous[name])
        except CloudflareAPIError:
            failed.append(name)
    if failed:
        return (f" Changed before the failure and NOT restored: {', '.join(sorted(failed))}"
                " (run again to converge).")
    return f" Restored the settings already changed: {', '.join(applied)}."


def main():
    run_cloudflare_module({"settings": dict(type="dict", required=True)}, run)


if __name__ == "__main__":
    main()
