"""cloudflare_cache_rules through the real cloudflare SDK against the local stand-in."""

import copy
import json
import socket
import time

import pytest
from cloudflare_standin import TOKEN, run_module

MODULE = "cloudflare_cache_rules"
ENTRYPOINT = "/rulesets/phases/http_request_cache_settings/entrypoint"

STATIC = {
    "ref": "static",
    "description": "Static assets",
    "expression": 'starts_with(http.request.uri.path, "/static/")',
    "cache": True,
    "edge_ttl": 31536000,
    "browser_ttl": 86400,
}
BYPASS = {
    "ref": "bypass",
    "expression": 'starts_with(http.request.uri.path, "/admin")',
    "cache": False,
}
FOREIGN_A = {
    "ref": "dashboard_rule_a",
    "description": "Made in the dashboard",
    "expression": 'http.host eq "img.example.com"',
    "action": "set_cache_settings",
    "action_parameters": {
        "cache": True,
        "edge_ttl": {"mode": "respect_origin"},
        "cache_key": {"custom_key": {"query_string": {"exclude": {"all": True}}}},
    },
    "enabled": False,
}
FOREIGN_B = {
    "ref": "terraform_rule_b",
    "description": "Made by someone's Terraform",
    "expression": 'http.request.uri.path.extension eq "mp4"',
    "action": "set_cache_settings",
    "action_parameters": {"cache": False},
    "logging": {"enabled": True},
}


def run(cf, check_mode=False, diff=False, **kwargs):
    args = {"api_token": TOKEN, "base_url": cf.base_url, "zone_name": "example.com",
            "retry_delay": 0.01}
    args.update(kwargs)
    args = {k: v for k, v in args.items() if v is not None}
    return run_module(MODULE, args, check_mode=check_mode, diff=diff)


def rules_of(cf):
    ruleset = cf.ruleset(cf.zone)
    return ruleset["rules"] if ruleset else None


def test_first_apply_creates_entry_point_then_is_idempotent(cf):
    result = run(cf, rules=[BYPASS, STATIC])

    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert result["added"] == ["gantry_bypass", "gantry_static"]
    stored = rules_of(cf)
    assert [r["ref"] for r in stored] == ["gantry_bypass", "gantry_static"]
    assert stored[1]["action_parameters"] == {
        "cache": True,
        "edge_ttl": {"mode": "override_origin", "default": 31536000},
        "browser_ttl": {"mode": "override_origin", "default": 86400},
    }
    assert stored[1]["description"] == "Static assets"
    assert stored[0]["description"] == "gantry_bypass"
    assert stored[0]["action_parameters"] == {"cache": False}
    methods = [c["method"] for c in cf.calls]
    assert methods == ["GET", "GET", "PUT"]  # zone lookup, 404 read, create

    cf.calls.clear()
    again = run(cf, rules=[BYPASS, STATIC])
    assert again["changed"] is False
    assert again["added"] == again["updated"] == again["removed"] == []
    assert cf.writes() == []
    assert cf.ruleset(cf.zone)["version"] == "1"


def test_foreign_rules_survive_byte_for_byte_in_place(cf):
    cf.seed_rules(cf.zone, [FOREIGN_A,
                            {**STATIC, "ref": "gantry_old", "action": "set_cache_settings",
                             "action_parameters": {"cache": True}},
                            FOREIGN_B])
    for key in ("edge_ttl", "browser_ttl", "cache", "description"):
        cf.rulesets[cf.zone]["http_request_cache_settings"]["rules"][1].pop(key, None)
    before = copy.deepcopy(rules_of(cf))

    result = run(cf, rules=[BYPASS, STATIC])

    assert result["changed"] is True
    assert result["added"] == ["gantry_bypass", "gantry_static"]
    assert result["removed"] == ["gantry_old"]
    assert result["foreign_rules"] == 2
    after = rules_of(cf)
    assert [r["ref"] for r in after] == ["dashboard_rule_a", "gantry_bypass",
                                         "gantry_static", "terraform_rule_b"]
    # Same id, version, last_updated and content: the foreign rules were not touched.
    assert after[0] == before[0]
    assert after[3] == before[2]
    put = cf.writes()[0]["body"]["rules"]
    for sent in put:
        assert not {"version", "last_updated"} & set(sent), sent
    assert put[0]["id"] == before[0]["id"]
    assert put[3]["id"] == before[2]["id"]

    cf.calls.clear()
    assert run(cf, rules=[BYPASS, STATIC])["changed"] is False
    assert cf.writes() == []


def test_first_apply_appends_after_existing_rules(cf):
    cf.seed_rules(cf.zone, [FOREIGN_A, FOREIGN_B])
    before = copy.deepcopy(rules_of(cf))

    run(cf, rules=[STATIC])

    after = rules_of(cf)
    assert after[:2] == before
    assert after[2]["ref"] == "gantry_static"


def test_update_keeps_rule_id_and_reports_updated(cf):
    run(cf, rules=[BYPASS, STATIC])
    ids = {r["ref"]: r["id"] for r in rules_of(cf)}

    result = run(cf, rules=[BYPASS, {**STATIC, "edge_ttl": "respect_origin"}])

    assert result["changed"] is True
    assert result["updated"] == ["gantry_static"]
    assert result["added"] == result["removed"] == []
    stored = {r["ref"]: r for r in rules_of(cf)}
    assert stored["gantry_static"]["id"] == ids["gantry_static"]
    assert stored["gantry_static"]["action_parameters"]["edge_ttl"] == {"mode": "respect_origin"}
    assert stored["gantry_bypass"]["version"] == "1"
    assert stored["gantry_static"]["version"] == "2"


def test_reordering_is_a_change(cf):
    run(cf, rules=[BYPASS, STATIC])
    result = run(cf, rules=[STATIC, BYPASS])
    assert result["changed"] is True
    assert [r["ref"] for r in rules_of(cf)] == ["gantry_static", "gantry_bypass"]


def test_absent_removes_only_ours(cf):
    cf.seed_rules(cf.zone, [FOREIGN_A, FOREIGN_B])
    run(cf, rules=[BYPASS, STATIC])
    foreign = [r for r in rules_of(cf) if not r["ref"].startswith("gantry_")]

    result = run(cf, state="absent")

    assert result["changed"] is True
    assert result["removed"] == ["gantry_bypass", "gantry_static"]
    assert rules_of(cf) == foreign

    cf.calls.clear()
    assert run(cf, state="absent")["changed"] is False
    assert cf.writes() == []


def test_absent_with_refs_removes_just_those(cf):
    run(cf, rules=[BYPASS, STATIC])
    result = run(cf, state="absent", rules=[{"ref": "bypass"}])
    assert result["removed"] == ["gantry_bypass"]
    assert [r["ref"] for r in rules_of(cf)] == ["gantry_static"]


def test_absent_without_entry_point_writes_nothing(cf):
    result = run(cf, state="absent")
    assert result["changed"] is False
    assert cf.writes() == []
    assert rules_of(cf) is None


def test_other_prefix_is_foreign(cf):
    run(cf, rules=[STATIC], rule_prefix="teamb_")
    run(cf, rules=[BYPASS])
    assert [r["ref"] for r in rules_of(cf)] == ["teamb_static", "gantry_bypass"]
    run(cf, state="absent")
    assert [r["ref"] for r in rules_of(cf)] == ["teamb_static"]


def test_check_mode_writes_nothing_and_diff_shows_the_change(cf):
    cf.seed_rules(cf.zone, [FOREIGN_A])
    before = copy.deepcopy(cf.ruleset(cf.zone))

    result = run(cf, check_mode=True, diff=True, rules=[STATIC])

    assert result["changed"] is True
    assert result["added"] == ["gantry_static"]
    assert cf.writes() == []
    assert cf.ruleset(cf.zone) == before
    diff_before = json.loads(result["diff"]["before"])
    diff_after = json.loads(result["diff"]["after"])
    assert diff_before == [FOREIGN_A]
    assert diff_after[0] == FOREIGN_A
    assert diff_after[1]["ref"] == "gantry_static"
    assert diff_after[1]["action_parameters"]["edge_ttl"] == {"mode": "override_origin",
                                                             "default": 31536000}
    assert len(diff_after) == 2


def test_diff_of_an_update_changes_only_that_rule(cf):
    run(cf, rules=[BYPASS, STATIC])
    result = run(cf, diff=True, check_mode=True, rules=[BYPASS, {**STATIC, "browser_ttl": 3600}])
    before = json.loads(result["diff"]["before"])
    after = json.loads(result["diff"]["after"])
    assert before[0] == after[0]
    assert before[1]["action_parameters"]["browser_ttl"]["default"] == 86400
    assert after[1]["action_parameters"]["browser_ttl"]["default"] == 3600
    assert "id" not in after[1] and "version" not in after[1]


def test_check_mode_on_a_new_zone_makes_only_reads(cf):
    result = run(cf, check_mode=True, rules=[STATIC])
    assert result["changed"] is True
    assert cf.writes() == []
    assert rules_of(cf) is None


def test_read_error_other_than_404_aborts_before_any_write(cf):
    cf.seed_rules(cf.zone, [FOREIGN_A])
    cf.inject(500, times=10, method="GET", path=ENTRYPOINT)

    result = run(cf, rules=[STATIC], retries=2)

    assert result["failed"] is True
    assert "HTTP 500 on all 3 attempts" in result["msg"]
    assert cf.writes() == []
    gets = [c for c in cf.calls if c["path"].endswith(ENTRYPOINT)]
    assert len(gets) == 3
    assert [r["ref"] for r in rules_of(cf)] == ["dashboard_rule_a"]


def test_transient_5xx_is_retried(cf):
    cf.inject(503, times=2, method="PUT")
    result = run(cf, rules=[STATIC])
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert [c["status"] for c in cf.writes()] == [503, 503, 200]
    assert [r["ref"] for r in rules_of(cf)] == ["gantry_static"]


def test_long_rate_limit_fails_at_once_with_a_clear_message(cf):
    cf.inject(429, times=100, retry_after=300)
    started = time.monotonic()

    result = run(cf, rules=[STATIC])

    assert time.monotonic() - started < 5
    assert result["failed"] is True
    assert result["status_code"] == 429
    assert "Retry-After 300 s" in result["msg"]
    assert "rate_limit_max_wait" in result["msg"]
    assert len(cf.calls) == 1
    assert cf.writes() == []


def test_short_rate_limit_is_waited_out(cf):
    cf.inject(429, times=1, method="PUT", retry_after=1)
    started = time.monotonic()

    result = run(cf, rules=[STATIC])

    assert result.get("failed") is not True, result
    assert time.monotonic() - started >= 1
    assert [c["status"] for c in cf.writes()] == [429, 200]


def test_missing_edit_permission_is_named(cf):
    cf.seed_rules(cf.zone, [FOREIGN_A])
    before = cf.ruleset(cf.zone)
    cf.add_token("read-only", {"zone:read", "cache_rules:read"})

    result = run(cf, rules=[STATIC], api_token="read-only")

    assert result["failed"] is True
    assert result["status_code"] == 403
    assert "Zone > Cache Rules > Edit" in result["msg"]
    assert cf.ruleset(cf.zone) == before


def test_missing_zone_read_permission_is_named(cf):
    cf.add_token("no-zone-read", {"cache_rules:read", "cache_rules:edit"})
    result = run(cf, rules=[STATIC], api_token="no-zone-read")
    assert result["failed"] is True
    assert "Zone > Zone > Read" in result["msg"]
    # With a zone id the lookup is skipped and the token is enough.
    ok = run(cf, rules=[STATIC], api_token="no-zone-read", zone_name=None, zone_id=cf.zone)
    assert ok["changed"] is True


def test_bad_token_is_reported_and_never_echoed(cf):
    secret = "s3cr3t-token-value-123"
    result = run(cf, rules=[STATIC], api_token=secret)
    assert result["failed"] is True
    assert result["status_code"] == 401
    assert "rejected the API token" in result["msg"]
    assert secret not in json.dumps(result)


def test_unknown_zone_name(cf):
    result = run(cf, rules=[STATIC], zone_name="nope.example")
    assert result["failed"] is True
    assert "zone nope.example not found" in result["msg"]


@pytest.mark.parametrize("rules, message", [
    ([STATIC, STATIC], "duplicate rule refs: gantry_static"),
    ([{**STATIC, "edge_ttl": "forever"}], "edge_ttl mode 'forever'"),
    ([{"ref": "x", "expression": "true"}], "set at least one cache setting"),
    ([{"ref": "x", "cache": True}], "expression is required"),
    ([{**STATIC, "action_parameters": {"cache": False}}], "both as an option"),
])
def test_invalid_rules_fail_before_any_call(cf, rules, message):
    result = run(cf, rules=rules)
    assert result["failed"] is True
    assert message in result["msg"]
    assert cf.calls == []


def test_zone_id_and_zone_name_are_exclusive(cf):
    result = run(cf, rules=[STATIC], zone_id=cf.zone)
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]
    assert cf.calls == []


def test_unreachable_api_is_retried_then_reported(cf):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    dead = f"http://127.0.0.1:{closed_port}/client/v4"

    result = run(cf, rules=[STATIC], base_url=dead, retries=2)

    assert result["failed"] is True
    assert f"cannot reach the Cloudflare API at {dead}" in result["msg"]
    assert "3 attempts" in result["msg"]
