"""Bad deploy inputs are refused with a clear message before any host is contacted.

The inventory points at containers that do not exist: a task that tried to reach a host
would end UNREACHABLE, so a clean validation failure proves no host was touched.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def make_inventory(tmp_path, drop=()):
    inventory = tmp_path / "inventory"
    group_vars = inventory / "group_vars" / "all"
    shutil.copytree(ROOT / "inventories" / "local" / "group_vars", inventory / "group_vars")
    main = yaml.safe_load((group_vars / "main.yml").read_text())
    for key in drop:
        main.pop(key)
    (group_vars / "main.yml").write_text(yaml.safe_dump(main))
    (inventory / "hosts.yml").write_text(yaml.safe_dump({
        "app_servers": {
            "hosts": {"gantry-no-such-host-1": {}, "gantry-no-such-host-2": {}},
            "vars": {"ansible_connection": "community.docker.docker"},
        }
    }))
    return inventory


def run_playbook(inventory, playbook="site.yml", extra=()):
    args = [str(BIN / "ansible-playbook"), "-i", str(inventory), playbook]
    for item in extra:
        args += ["-e", item]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def assert_refused_before_hosts(proc, *fragments):
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    for fragment in fragments:
        assert fragment in output, output
    assert "UNREACHABLE" not in output, output
    assert "PLAY [Build the release]" not in output, output


def test_valid_inputs_pass_validation(tmp_path):
    proc = run_playbook(make_inventory(tmp_path), "playbooks/validate.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["gunicorn_workers=-1"], ["workers (-1) and the other counts must not be negative"]),
        (["gunicorn_timeout=soon"], ["gunicorn_timeout", "int"]),
        (["gantry_environment=qa"], ["gantry_environment", "local, staging, production"]),
        (["gantry_app_name=Bad_Name"], ["gantry_app_name (Bad_Name)", "lowercase"]),
        (["flask_release_keep=1"], ["flask_release_keep (1) must be at least 2"]),
        (['{"cloudflare_cdn_enabled": true}'], ["Set exactly one of cloudflare_cdn_zone_name"]),
    ],
    ids=["negative-workers", "timeout-not-a-number", "unknown-environment", "bad-app-name",
         "keep-too-few", "cdn-without-zone"],
)
def test_bad_value_is_refused(tmp_path, extra, fragments):
    proc = run_playbook(make_inventory(tmp_path), extra=extra)
    assert_refused_before_hosts(proc, *fragments)


def test_missing_app_name_is_refused(tmp_path):
    proc = run_playbook(make_inventory(tmp_path, drop=["gantry_app_name"]))
    assert_refused_before_hosts(proc, "missing required arguments: gantry_app_name")
