"""The cloudflare_cdn role end to end: ansible-playbook -> modules -> SDK -> stand-in."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cloudflare_standin import REPO, TOKEN

PLAYBOOK = """\
- name: Role under test
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Configure the CDN
      ansible.builtin.include_role:
        name: gantry.deploy.cloudflare_cdn
    - name: Show the published fact
      ansible.builtin.debug:
        var: cloudflare_cdn_purged_urls
      when: cloudflare_cdn_enabled
"""
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
STATIC_CSS = "https://cdn.example.com/static/app.css"
FOREIGN = {
    "ref": "manual_images",
    "description": "Made in the dashboard",
    "expression": 'http.host eq "img.example.com"',
    "action": "set_cache_settings",
    "action_parameters": {"cache": True, "edge_ttl": {"mode": "respect_origin"}},
}


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "inventory.ini").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    return tmp_path


def base_vars(cf):
    return {
        "cloudflare_cdn_enabled": True,
        "cloudflare_cdn_zone_name": "example.com",
        "cloudflare_cdn_api_token": TOKEN,
        "cloudflare_cdn_base_url": cf.base_url,
        "gantry_app_name": "demo",
        "s3_static_changed_urls": [STATIC_CSS],
        "cloudflare_cdn_purge_paths": ["/", "/about"],
        "cloudflare_cdn_site_url": "https://www.example.com/",
    }


def play(workdir, extra_vars, *options, callback="ansible.builtin.json"):
    (workdir / "vars.json").write_text(json.dumps(extra_vars))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"), ANSIBLE_HOME=str(workdir / "home"))
    env.pop("CLOUDFLARE_API_TOKEN", None)
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(workdir / "inventory.ini"), str(workdir / "play.yml"),
         "-e", f"@{workdir / 'vars.json'}", *options],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def task_results(proc):
    """Task name -> localhost result, from the json callback."""
    data = json.loads(proc.stdout)
    results = {}
    for task in data["plays"][0]["tasks"]:
        host = task["hosts"].get("localhost")
        if host is not None:
            results[task["task"]["name"].split(" : ", 1)[-1]] = host
    return results


def test_role_applies_defaults_then_only_purges(cf, workdir):
    cf.seed_rules(cf.zone, [FOREIGN])
    foreign_before = cf.ruleset(cf.zone)["rules"][0]

    proc = play(workdir, base_vars(cf))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = cf.ruleset(cf.zone)["rules"]
    assert rules[0] == foreign_before
    assert [r["ref"] for r in rules[1:]] == ["gantry_demo_site", "gantry_demo_bypass",
                                            "gantry_demo_static"]
    site, bypass, static = rules[1:]
    assert site["expression"] == "true"
    assert site["action_parameters"] == {"cache": True, "edge_ttl": {"mode": "bypass_by_default"},
                                         "browser_ttl": {"mode": "respect_origin"}}
    assert bypass["expression"] == (
        '(starts_with(http.request.uri.path, "/admin") or '
        'starts_with(http.request.uri.path, "/api/") or '
        'starts_with(http.request.uri.path, "/login") or '
        'starts_with(http.request.uri.path, "/logout") or '
        'http.cookie contains "session=") and not '
        'starts_with(http.request.uri.path, "/static/")')
    assert bypass["action_parameters"] == {"cache": False}
    assert static["expression"] == 'starts_with(http.request.uri.path, "/static/")'
    assert static["action_parameters"]["edge_ttl"] == {"mode": "override_origin",
                                                       "default": 31536000}
    assert static["action_parameters"]["browser_ttl"] == {"mode": "override_origin",
                                                          "default": 86400}
    assert cf.setting(cf.zone, "browser_cache_ttl") == 0
    expected_urls = [STATIC_CSS, "https://www.example.com/", "https://www.example.com/about"]
    assert cf.purges == [{"zone_id": cf.zone, "files": expected_urls}]
    results = task_results(proc)
    assert results["Show the published fact"]["cloudflare_cdn_purged_urls"] == expected_urls

    cf.calls.clear()
    again = play(workdir, base_vars(cf))
    assert again.returncode == 0, again.stdout + again.stderr
    results = task_results(again)
    assert results["Apply the cache rules"]["changed"] is False
    assert results["Apply the zone settings"]["changed"] is False
    assert results["Purge what the deploy changed"]["changed"] is True
    assert [c["path"].rsplit("/", 1)[1] for c in cf.writes()] == ["purge_cache"]
    assert [c["path"] for c in cf.calls].count("/client/v4/zones") == 1

    quiet = play(workdir, {**base_vars(cf), "s3_static_changed_urls": [],
                           "cloudflare_cdn_purge_paths": []})
    assert quiet.returncode == 0
    assert json.loads(quiet.stdout)["stats"]["localhost"]["changed"] == 0


def test_check_and_diff_write_nothing(cf, workdir):
    proc = play(workdir, {**base_vars(cf), "cloudflare_cdn_hostnames": ["www.example.com"]},
                "--check", "--diff")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cf.writes() == []
    assert cf.ruleset(cf.zone) is None
    results = task_results(proc)
    rules = results["Apply the cache rules"]
    assert rules["changed"] is True
    after = json.loads(rules["diff"]["after"])
    assert [r["ref"] for r in after] == ["gantry_demo_site", "gantry_demo_bypass",
                                         "gantry_demo_static"]
    assert after[0]["expression"] == 'http.host in {"www.example.com"}'
    assert after[2]["expression"] == ('http.host in {"www.example.com"} and '
                                      'starts_with(http.request.uri.path, "/static/")')
    assert results["Apply the zone settings"]["diff"]["after"] == {"browser_cache_ttl": 0}
    assert results["Purge what the deploy changed"]["requests"] == 1


@pytest.mark.parametrize(("s3_vars", "static_path"), [
    ({"s3_static_enabled": True}, "/demo/"),
    ({"s3_static_enabled": True, "s3_static_prefix": "/assets/shop/"}, "/assets/shop/"),
    ({"s3_static_enabled": False, "s3_static_prefix": "assets"}, "/static/"),
])
def test_static_rule_follows_the_s3_prefix(cf, workdir, s3_vars, static_path):
    """With S3 assets the static rule covers the key prefix (the app's name by default),
    read from the inputs: a rollback, which uploads nothing, keeps the same rules."""
    proc = play(workdir, {**base_vars(cf), **s3_vars}, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = json.loads(task_results(proc)["Apply the cache rules"]["diff"]["after"])
    assert after[2]["expression"] == f'starts_with(http.request.uri.path, "{static_path}")'


def test_token_is_never_printed(cf, workdir):
    secret = "tok-e2e-9f8e7d6c5b4a"
    proc = play(workdir, {**base_vars(cf), "cloudflare_cdn_api_token": secret}, "-vvv",
                callback="ansible.builtin.default")
    assert proc.returncode != 0
    assert "rejected the API token (HTTP 401)" in proc.stdout
    assert secret not in proc.stdout + proc.stderr


def test_missing_permission_stops_before_settings_and_purge(cf, workdir):
    cf.add_token("rules-read-only", {"zone:read", "cache_rules:read", "zone_settings:read",
                                     "zone_settings:edit", "cache_purge"})
    proc = play(workdir, {**base_vars(cf), "cloudflare_cdn_api_token": "rules-read-only"})
    assert proc.returncode != 0
    results = task_results(proc)
    assert "Zone > Cache Rules > Edit" in results["Apply the cache rules"]["msg"]
    assert cf.writes()[0]["status"] == 403
    assert len(cf.writes()) == 1
    assert cf.purges == []


def test_disabled_role_calls_nothing(cf, workdir):
    proc = play(workdir, {**base_vars(cf), "cloudflare_cdn_enabled": False})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cf.calls == []


def test_bad_inputs_fail_before_any_call(cf, workdir):
    proc = play(workdir, {**base_vars(cf), "cloudflare_cdn_site_url": ""})
    assert proc.returncode != 0
    assert "cloudflare_cdn_site_url" in proc.stdout
    assert cf.calls == []
