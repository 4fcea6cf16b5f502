#!/usr/bin/python
# Copyright: Gantry contributors
# MIT License (see the repository)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudflare_cache_rules
short_description: Manage Cloudflare Cache Rules of a zone, leaving other rules alone
description:
  - Manages the rules of a zone's C(http_request_cache_settings) entry point ruleset (the
    Cache Rules of the dashboard) through the Rulesets API and the official C(cloudflare)
    Python SDK.
  - The module owns only rules whose C(ref) starts with O(rule_prefix). Every other rule
    in the phase is sent back exactly as read and keeps its position. The managed rules
    stay together, in the declared order, where the first of them already is; the first
    time, they are appended after the existing rules, so they take precedence (when
    several rules match a request, later rules override earlier ones).
  - Reads the entry point, merges, and writes (one PUT, which replaces the rule list as a
    whole) only when the result differs. A 404 on read means the zone has no entry point
    yet; any other read error aborts before anything is written.
  - Managed rules the play no longer declares are removed.
version_added: "1.0.0"
author: Gantry contributors (!UNKNOWN)
requirements:
  - cloudflare >= 4.3 (the official Cloudflare Python SDK)
options:
  rules:
    description:
      - The cache rules this module owns, in order.
      - With O(state=absent), the rules to remove (only C(ref) matters); an empty list
        removes every rule whose ref starts with O(rule_prefix).
    type: list
    elements: dict
    default: []
    suboptions:
      ref:
        description:
          - Identifier of the rule, unique in the list. The rule's ref in Cloudflare is
            O(rule_prefix) followed by this value.
        type: str
        required: true
      description:
        description: Name shown in the dashboard. Defaults to the full ref.
        type: str
      expression:
        description:
          - Rules language expression the request must match, for example
            C(starts_with(http.request.uri.path, "/static/")). Required with O(state=present).
        type: str
      enabled:
        description: Whether the rule is active.
        type: bool
        default: true
      cache:
        description:
          - C(true) makes matching requests eligible for cache, C(false) bypasses the cache.
        type: bool
      edge_ttl:
        description:
          - How long Cloudflare's edge keeps a response.
          - An integer number of seconds means C(override_origin) with that default TTL.
          - A string is a mode without a default TTL (C(respect_origin), C(bypass_by_default)).
          - A dict is sent as the API's C(edge_ttl) object (C(mode), C(default),
            C(status_code_ttl)).
        type: raw
      browser_ttl:
        description:
          - How long browsers may keep a response. Integer, mode string (C(respect_origin),
            C(bypass), C(bypass_by_default)) or the API's C(browser_ttl) object, as for
            O(rules[].edge_ttl).
          - A rule cannot shorten the max-age the origin sends.
        type: raw
      cache_key:
        description:
          - The API's C(cache_key) object (C(ignore_query_strings_order),
            C(cache_deception_armor), C(custom_key)).
        type: dict
      serve_stale:
        description:
          - The API's C(serve_stale) object, such as
            C(disable_stale_while_updating=true) in dict form.
        type: dict
      respect_strong_etags:
        description: Keep strong ETags from the origin.
        type: bool
      origin_error_page_passthru:
        description: Pass origin error pages through instead of Cloudflare's.
        type: bool
      action_parameters:
        description:
          - Any other C(set_cache_settings) action parameter, as the API names it (for example
            C(additional_cacheable_ports), C(read_timeout), C(cache_reserve)). Must not repeat
            a parameter set by its own option.
        type: dict
        default: {}
  rule_prefix:
    description:
      - Prefix of the refs of the rules this module owns. Rules without it are never changed.
      - Give each independent user of the module its own prefix.
    type: str
    default: gantry_
  state:
    description: C(present) makes the managed rules match O(rules); C(absent) removes managed rules.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - gantry.deploy.gantry_cloudflare
  - gantry.deploy.gantry_cloudflare.check_and_diff
notes:
  - The token needs C(Zone > Cache Rules > Edit) on the zone.
  - Runs where the task runs; delegate it to C(localhost) with C(run_once).
  - There is no compare-and-swap on entry point rulesets; a dashboard edit made between
    this module's read and its write is lost.
seealso:
  - name: Cache Rules
    description: Cloudflare documentation of Cache Rules.
    link: https://developers.cloudflare.com/cache/how-to/cache-rules/
"""

EXAMPLES = r"""
- name: Cache static files at the edge for a year, bypass the admin
  cloudflare_cache_rules:
    zone_name: example.com
    api_token: "{{ vault_cloudflare_api_token }}"
    rules:
      - ref: admin_bypass
        expression: starts_with(http.request.uri.path, "/admin")
        cache: false
      - ref: static
        description: Static assets
        expression: starts_with(http.request.uri.path, "/static/")
        cache: true
        edge_ttl: 31536000
        browser_ttl: 86400
        serve_stale:
          disable_stale_while_updating: false
  delegate_to: localhost
  run_once: true

- name: Remove every rule this toolkit created, keep the others
  cloudflare_cache_rules:
    zone_id: 023e105f4ecef8ad9ca31a8372d0c353
    state: absent
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
zone_id:
  description: Id of the zone.
  returned: success
  type: str
ruleset_id:
  description: Id of the entry point ruleset; empty when there is none.
  returned: success
  type: str
ruleset_version:
  description: Version of the entry point ruleset after the run (before it, in check mode).
  returned: success
  type: str
rules:
  description: The managed rules after the run (as they would be, in check mode), in API form.
  returned: success
  type: list
  elements: dict
added:
  description: Refs of managed rules created.
  returned: success
  type: list
  elements: str
  sample: [gantry_static]
updated:
  description: Refs of managed rules changed or moved.
  returned: success
  type: list
  elements: str
removed:
  description: Refs of managed rules deleted.
  returned: success
  type: list
  elements: str
foreign_rules:
  description: Number of rules in the phase that this module does not own (left untouched).
  returned: success
  type: int
"""

import copy
import json

from ansible_collections.gantry.deploy.plugins.module_utils.gantry_cloudflare import (
    CloudflareAPIError,
    run_cloudflare_module,
)

PHASE = "http_request_cache_settings"
ACTION = "set_cache_settings"
PERM_READ = "Zone > Cache Rules > Read"
PERM_EDIT = "Zone > Cache Rules > Edit"
# Server-assigned; sending them back is at best ignored.
READ_ONLY_RULE_FIELDS = ("version", "last_updated", "categories")
# What we compare and send for a managed rule: anything else the API echoes is not ours.
MANAGED_FIELDS = ("ref", "description", "expression", "action", "enabled", "action_parameters")
NAMED_PARAMETERS = ("cache", "edge_ttl", "browser_ttl", "cache_key", "serve_stale",
                    "respect_strong_etags", "origin_error_page_passthru")
EDGE_TTL_MODES = ("respect_origin", "override_origin", "bypass_by_default")
BROWSER_TTL_MODES = ("respect_origin", "override_origin", "bypass_by_default", "bypass")


class RuleError(ValueError):
    pass


def _ttl(name, value, modes):
    """API form of an edge_ttl/browser_ttl given as seconds, a mode, or the API object."""
    if isinstance(value, bool):
        raise RuleError(f"{name} must be seconds, a mode or a dict, not a boolean")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int):
        return {"mode": "override_origin", "default": value}
    if isinstance(value, str):
        if value not in modes or value == "override_origin":
            allowed = ", ".join(m for m in modes if m != "override_origin")
            raise RuleError(f"{name} mode {value!r} is not one of {allowed} "
                            "(give seconds for override_origin)")
        return {"mode": value}
    if isinstance(value, dict):
        if value.get("mode") not in modes:
            raise RuleError(f"{name}.mode must be one of {', '.join(modes)}")
        return value
    raise RuleError(f"{name} must be seconds, a mode or a dict")


def desired_rule(spec, prefix):
    """The API form of one declared rule."""
    ref = prefix + spec["ref"]
    if not spec.get("expression"):
        raise RuleError(f"rule {ref}: expression is required")
    params = copy.deepcopy(spec.get("action_parameters") or {})
    for name in NAMED_PARAMETERS:
        value = spec.get(name)
        if value is None:
            continue
        if name in params:
            raise RuleError(f"rule {ref}: {name} is set both as an option and in action_parameters")
        if name == "edge_ttl":
            value = _ttl("edge_ttl", value, EDGE_TTL_MODES)
        elif name == "browser_ttl":
            value = _ttl("browser_ttl", value, BROWSER_TTL_MODES)
        params[name] = value
    if not params:
        raise RuleError(f"rule {ref}: set at least one cache setting (cache, edge_ttl, ...)")
    return {
        "ref": ref,
        "description": spec.get("description") or ref,
        "expression": spec["expression"],
        "action": ACTION,
        "enabled": spec["enabled"],
        "action_parameters": params,
    }


def managed_view(rule):
    return {k: rule[k] for k in MANAGED_FIELDS if k in rule}


def payload(rule):
    """A rule as read, minus server-assigned fields, ready to be sent back."""
    return {k: v for k, v in rule.items() if k not in READ_ONLY_RULE_FIELDS}


def comparable(rule, owned):
    view = managed_view(rule) if owned(rule) else payload(rule)
    view.pop("id", None)
    return view


def plan(existing, wanted, owned):
    """New rule list: foreign rules untouched and in place, managed block where it was."""
    by_ref = {r["ref"]: r for r in existing if owned(r)}
    block = []
    for rule in wanted:
        rule = dict(rule)
        if rule["ref"] in by_ref and by_ref[rule["ref"]].get("id"):
            rule["id"] = by_ref[rule["ref"]]["id"]
        block.append(rule)
    result = []
    placed = False
    for rule in existing:
        if owned(rule):
            if not placed:
                result.extend(block)
                placed = True
            continue
        result.append(payload(rule))
    if not placed:
        result.extend(block)
    return result


def render(rules, owned):
    return json.dumps([comparable(r, owned) for r in rules], indent=2, sort_keys=True) + "\n"


def run(module, api):
    params = module.params
    prefix = params["rule_prefix"]
    if not prefix:
        raise RuleError("rule_prefix must not be empty: it is what keeps other rules safe")

    def owned(rule):
        return str(rule.get("ref") or "").startswith(prefix)

    refs = [prefix + r["ref"] for r in params["rules"]]
    duplicates = sorted({r for r in refs if refs.count(r) > 1})
    if duplicates:
        raise RuleError(f"duplicate rule refs: {', '.join(duplicates)}")

    # Declared rules are validated before the first call: a typo must not cost a write.
    declared = None
    if params["state"] == "present":
        declared = [desired_rule(spec, prefix) for spec in params["rules"]]

    zone_id = api.zone_id()
    try:
        current = api.call(f"read the cache rules of zone {zone_id}", PERM_READ,
                           api.client.rulesets.phases.with_raw_response.get, PHASE, zone_id=zone_id)
    except CloudflareAPIError as exc:
        if exc.status != 404:
            raise
        current = None
    current = current or {}
    existing = current.get("rules") or []

    ours_before = [r for r in existing if owned(r)]
    if declared is not None:
        wanted = declared
    elif refs:
        wanted = [payload(r) for r in ours_before if r["ref"] not in refs]
    else:
        wanted = []

    new_rules = plan(existing, wanted, owned)
    before_view = [comparable(r, owned) for r in existing]
    after_view = [comparable(r, owned) for r in new_rules]
    changed = before_view != after_view

    old_by_ref = {r["ref"]: comparable(r, owned) for r in ours_before}
    new_by_ref = {r["ref"]: comparable(r, owned) for r in wanted}
    old_order = [r["ref"] for r in ours_before]
    new_order = [r["ref"] for r in wanted]
    added = [ref for ref in new_order if ref not in old_by_ref]
    removed = [ref for ref in old_order if ref not in new_by_ref]
    kept = [ref for ref in new_order if ref in old_by_ref]
    kept_old_order = [ref for ref in old_order if ref in new_by_ref]
    updated = [ref for i, ref in enumerate(kept)
               if old_by_ref[ref] != new_by_ref[ref] or kept_old_order[i] != ref]

    result = dict(
        changed=changed,
        zone_id=zone_id,
        ruleset_id=current.get("id", ""),
        ruleset_version=str(current.get("version", "")),
        rules=wanted,
        added=added,
        updated=updated,
        removed=removed,
        foreign_rules=len(existing) - len(ours_before),
    )
    if module._diff:
        result["diff"] = dict(
            before_header=f"{PHASE} entry point of zone {zone_id}",
            after_header=f"{PHASE} entry point of zone {zone_id}",
            before=render(existing, owned),
            after=render(new_rules, owned),
        )
    if not changed or module.check_mode:
        return result

    written = api.call(f"write the cache rules of zone {zone_id}", PERM_EDIT,
                       api.client.rulesets.phases.with_raw_response.update, PHASE,
                       zone_id=zone_id, rules=new_rules) or {}
    final = written.get("rules") or []
    result["ruleset_id"] = written.get("id", "")
    result["ruleset_version"] = str(written.get("version", ""))
    result["rules"] = [r for r in final if owned(r)]
    stored = {r.get("ref"): managed_view(r) for r in result["rules"]}
    for rule in wanted:
        if stored.get(rule["ref"]) != managed_view(rule):
            module.warn(f"Cloudflare stored rule {rule['ref']} differently from what was sent; "
                        "the next run will report it as changed again. Declare it the way "
                        "the API returns it.")
    return result


def main():
    rule_options = dict(
        ref=dict(type="str", required=True),
        description=dict(type="str"),
        expression=dict(type="str"),
        enabled=dict(type="bool", default=True),
        cache=dict(type="bool"),
        edge_ttl=dict(type="raw"),
        browser_ttl=dict(type="raw"),
        cache_key=dict(type="dict", no_log=False),
        serve_stale=dict(type="dict"),
        respect_strong_etags=dict(type="bool"),
        origin_error_page_passthru=dict(type="bool"),
        action_parameters=dict(type="dict", default={}),
    )
    run_cloudflare_module(
        {
            "rules": dict(type="list", elements="dict", default=[], options=rule_options),
            "rule_prefix": dict(type="str", default="gantry_"),
            "state": dict(type="str", choices=["present", "absent"], default="present"),
        },
        run,
    )


if __name__ == "__main__":
    main()
