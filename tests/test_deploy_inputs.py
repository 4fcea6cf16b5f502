"""Bad deploy inputs are refused with a clear message before any host is contacted.

The inventory points at containers that do not exist: a task that tried to reach a host
would end UNREACHABLE (or, with pipelining, fail with "No such container"), so a clean
validation failure proves no host was touched. Each
message must name the input and the value it got.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
S3_ON = {"s3_static_enabled": True, "s3_static_bucket": "assets-bucket"}
CDN_ON = {"cloudflare_cdn_enabled": True, "cloudflare_cdn_zone_name": "example.com"}
HOURLY_REPORT = {"command": "flask orders report", "on_calendar": "hourly"}


def make_inventory(tmp_path, drop=()):
    inventory = tmp_path / "inventory"
    group_vars = inventory / "group_vars" / "all"
    shutil.copytree(ROOT / "inventories" / "local" / "group_vars", inventory / "group_vars")
    main = yaml.safe_load((group_vars / "main.yml").read_text())
    app = main["gantry_app"]
    for key in drop:
        app.pop(key)
    # The demo's local S3, Cloudflare stand-in and database: each case here turns on what
    # it tests.
    for key in [k for k in main if k.startswith("gantry_local_")]:
        main.pop(key)
    app.pop("assets")
    app.pop("cdn")
    app["secrets"].pop("DATABASE_URL")
    (group_vars / "main.yml").write_text(yaml.safe_dump(main))
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "app_servers": {
                    "hosts": {"gantry-no-such-host-1": {}, "gantry-no-such-host-2": {}},
                    "vars": {"ansible_connection": "community.docker.docker"},
                }
            }
        )
    )
    return inventory


def run_playbook(inventory, playbook="site.yml", extra=()):
    args = [str(BIN / "ansible-playbook"), "-i", str(inventory), playbook]
    for item in extra:
        args += ["-e", item if isinstance(item, str) else json.dumps(item)]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def assert_refused_before_hosts(proc, *fragments):
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    for fragment in fragments:
        assert fragment in output, output
    # A host contacted ends UNREACHABLE, or with pipelining in a failed module run.
    assert "UNREACHABLE" not in output and "No such container" not in output, output
    assert "PLAY [Check each host can take the app]" not in output, output
    assert "PLAY [Build the release]" not in output, output


def test_valid_inputs_reach_only_the_read_only_host_check(tmp_path):
    proc = run_playbook(make_inventory(tmp_path), "playbooks/validate.yml")
    output = proc.stdout + proc.stderr
    # Every controller-side check passed; the first host contact is the read-only probe,
    # which fails on these hosts that do not exist (unreachable, or with pipelining a
    # module that could not run).
    assert re.search(r"gantry-no-such-host-1 +: .*(unreachable=1|failed=1)", output), output
    assert "PLAY [Check each host can take the app]" in output, output
    before_probe = output.split("PLAY [Check each host can take the app]")[0]
    assert "fatal" not in before_probe and "failed:" not in before_probe, output


# Every form Gunicorn accepts passes, at the top level and in the gunicorn role's own
# validation; a factory's quotes survive -e as JSON.
@pytest.mark.parametrize("entry_point", [
    "gantry_demo.wsgi",
    "shop:create_app()",
    "shop:create_app('production', debug=False)",
])
def test_gunicorn_entry_points_pass_validation(tmp_path, entry_point):
    proc = run_playbook(make_inventory(tmp_path), "playbooks/validate.yml",
                        extra=[{"gantry_wsgi_app": entry_point}])
    output = proc.stdout + proc.stderr
    assert "TASK [gantry.deploy.gunicorn : Check the gunicorn settings]" in output, output
    assert "PLAY [Check each host can take the app]" in output, output
    before_probe = output.split("PLAY [Check each host can take the app]")[0]
    assert "fatal" not in before_probe and "failed:" not in before_probe, output


def test_booleans_and_numbers_from_the_command_line_are_read_as_such(tmp_path):
    # -e gives strings: "true", "2" and "8001" must work like their YAML counterparts.
    proc = run_playbook(
        make_inventory(tmp_path),
        "playbooks/validate.yml",
        extra=[
            "s3_static_enabled=true",
            "s3_static_bucket=assets-bucket",
            "cloudflare_cdn_enabled=false",
            "gantry_serial=2",
            "gunicorn_memory_deny_write_execute=false",
            "flask_release_keep=3",
        ],
    )
    output = proc.stdout + proc.stderr
    assert "Conditional result" not in output, output
    assert "PLAY [Check each host can take the app]" in output, output
    assert "TASK [gantry.deploy.s3_static : Check the asset inputs]" in output, output


# (extra vars, fragments the output must hold). Think like a user who mistypes.
BAD_INPUTS = {
    "port-set": (["gantry_app_port=8000"], ["gantry_app_port is", "8000", "nginx_edge_https_port"]),
    "port-fraction": (["gantry_app_port=80.5"], ["gantry_app_port", "80.5", "int"]),
    "port-not-a-number": (["gantry_app_port=http"], ["gantry_app_port", "http", "int"]),
    "serial-word": (["gantry_serial=abc"], ["gantry_serial is", "abc", "hosts per batch"]),
    "serial-zero": (["gantry_serial=0"], ["gantry_serial is", "hosts per batch"]),
    "serial-over-100-percent": (["gantry_serial=150%"], ["gantry_serial is", "150%"]),
    "serial-list-with-junk": (
        [{"gantry_serial": [1, "x"]}],
        ["gantry_serial is", "hosts per batch"],
    ),
    "name-root": (["gantry_app_name=root"], ["gantry_app.name is", "root", "reserved"]),
    "name-www-data": (["gantry_app_name=www-data"], ["gantry_app.name is", "www-data", "reserved"]),
    "name-docker": (["gantry_app_name=docker"], ["gantry_app.name is", "docker", "reserved"]),
    "name-systemd-family": (
        ["gantry_app_name=systemd-shop"],
        ["gantry_app.name is", "systemd-shop", "reserved"],
    ),
    "name-trailing-newline": (
        [{"gantry_app_name": "shop\n"}],
        ["gantry_app.name is", "shop\\n", "lowercase"],
    ),
    "name-with-space": (
        [{"gantry_app_name": "my shop"}],
        ["gantry_app.name is", "my shop", "lowercase"],
    ),
    "name-with-slash": (["gantry_app_name=shop/admin"], ["gantry_app.name is", "shop/admin"]),
    "name-unicode": ([{"gantry_app_name": "café"}], ["gantry_app.name is", "lowercase"]),
    "name-uppercase": (
        ["gantry_app_name=Bad_Name"],
        ["gantry_app.name is", "Bad_Name", "lowercase"],
    ),
    "name-empty": ([{"gantry_app_name": ""}], ["gantry_app.name is", '""']),
    "environment-unknown": (
        ["gantry_environment=qa"],
        ["gantry_environment", "local, staging, production"],
    ),
    "source-missing": (
        ["gantry_app_source=/nonexistent/app"],
        ["gantry_app.source is", "/nonexistent/app", "pyproject.toml"],
    ),
    "wsgi-attribute-path": (
        ["gantry_wsgi_app=myapp:app.wsgi_app"],
        [
            "gantry_app.entry_point is",
            "myapp:app.wsgi_app",
            "no attribute paths",
            "module:factory(",
        ],
    ),
    "wsgi-factory-argument-not-literal": (
        [{"gantry_wsgi_app": "myapp:create_app(os.environ)"}],
        ["gantry_app.entry_point is", "create_app(os.environ)", "other than literals"],
    ),
    "wsgi-module-not-a-name": (
        ["gantry_wsgi_app=my-app:app"],
        ["gantry_app.entry_point is", "my-app:app", "dotted Python name"],
    ),
    "bool-not-a-bool": (["s3_static_enabled=maybe"], ["s3_static_enabled", "maybe", "bool"]),
    "workers-negative": (["gunicorn_workers=-1"], ["gunicorn_workers is", "-1"]),
    "timeout-not-a-number": (["gunicorn_timeout=soon"], ["gunicorn_timeout", "soon", "int"]),
    "threads-zero": (["gunicorn_threads=0"], ["gunicorn_threads is", "1-256"]),
    "profile-unknown": (["gunicorn_profile=foo"], ["gunicorn_profile", "foo", "io, mixed, cpu"]),
    "preload-not-a-bool": (
        ["gunicorn_preload_app=maybe"], ["gunicorn_preload_app", "maybe", "bool"],
    ),
    "threads-with-sync": (
        ["gunicorn_worker_class=sync", "gunicorn_threads=8"],
        ["gunicorn_threads is", "with gunicorn_worker_class sync"],
    ),
    "memory-percent-over-100": (
        ["gunicorn_memory_percent=150"],
        ["gunicorn_memory_percent is", "150", "1-100"],
    ),
    "worker-class-unknown": (
        ["gunicorn_worker_class=eventlet"],
        ["gunicorn_worker_class", "eventlet", "gthread"],
    ),
    "socket-dir-relative": (
        ["gunicorn_socket_dir=run/shop"],
        ["gunicorn_socket_dir is", "run/shop", "absolute path"],
    ),
    "max-requests-negative": (["gunicorn_max_requests=-1"], ["gunicorn_max_requests is", "-1"]),
    "keep-too-few": (["flask_release_keep=1"], ["flask_release_keep is", "at least 2"]),
    "health-timeout-zero": (
        ["flask_release_health_timeout=0"],
        ["flask_release_health_timeout is", "1-3600"],
    ),
    "health-path-not-a-path": (
        ["flask_release_health_path=healthz"],
        ["flask_release_health_path is", "healthz", "starting with /"],
    ),
    "watch-threshold-over-100": (
        ["flask_release_watch_threshold=150"],
        ["flask_release_watch_threshold is", "150", "0-100"],
    ),
    "watch-threshold-negative": (
        ["flask_release_watch_threshold=-1"],
        ["flask_release_watch_threshold is", "-1", "0-100"],
    ),
    "release-id-path": (["flask_app_release_id=../etc"], ["flask_app_release_id is", "../etc"]),
    "requirements-missing": (
        ["flask_app_requirements_file=/nonexistent/req.txt"],
        ["flask_app_requirements_file is", "/nonexistent/req.txt"],
    ),
    "env-key-with-space": (
        [{"app_env_vars": {"BAD KEY": "x"}}],
        ["not valid variable names", "BAD KEY"],
    ),
    "bucket-name-invalid": (
        [S3_ON | {"s3_static_bucket": "My_Bucket"}],
        ["s3_static_bucket is", "My_Bucket"],
    ),
    "s3-workers-zero": ([S3_ON | {"s3_static_workers": 0}], ["s3_static_workers is", "1-256"]),
    "s3-grace-negative": (
        [S3_ON | {"s3_static_grace_period": -1}],
        ["s3_static_grace_period is", "0 or more"],
    ),
    "release-command-timeout-zero": (
        ['{"gantry_release_command": "flask db upgrade", "flask_release_command_timeout": 0}'],
        ["flask_release_command_timeout is", "1-86400"],
    ),
    "s3-compress-unknown": (
        [S3_ON | {"s3_static_compress": "zstd"}],
        ["s3_static_compress", "zstd", "brotli"],
    ),
    "cdn-without-zone": (
        ['{"cloudflare_cdn_enabled": true}'],
        ["cloudflare_cdn_zone_name is", "exactly one"],
    ),
    "cdn-batch-zero": (
        [CDN_ON | {"cloudflare_cdn_purge_batch_size": 0}],
        ["cloudflare_cdn_purge_batch_size is", "1-500"],
    ),
    "cdn-static-prefix-relative": (
        [CDN_ON | {"cloudflare_cdn_static_prefix": "static/"}],
        ["cloudflare_cdn_static_prefix is", "static/"],
    ),
    "processes-not-a-dict": (
        [{"gantry_processes": ["flask orders work"]}],
        ["gantry_processes", "dict"],
    ),
    "process-name-with-underscore": (
        [{"gantry_processes": {"queue_worker": "flask orders work"}}],
        ["\n- app_processes_services.queue_worker is", "names a unit"],
    ),
    "process-empty-command": (
        [{"gantry_processes": {"worker": {"command": " "}}}],
        ["app_processes_services.worker.command is", "command line"],
    ),
    "process-command-on-two-lines": (
        [{"gantry_processes": {"worker": "flask orders work\nrm -rf /"}}],
        ["app_processes_services.worker.command is", "a command line"],
    ),
    "process-as-a-list": (
        [{"gantry_processes": {"worker": ["flask", "orders", "work"]}}],
        ["app_processes_services.worker is", "a command, or a dict of command"],
    ),
    "process-unknown-key": (
        [{"gantry_processes": {"worker": {"command": "x", "stop_timeout_s": 5}}}],
        ["app_processes_services.worker is", "stop_timeout_s", "a dict of command, stop_timeout"],
    ),
    "process-stop-timeout-zero": (
        [{"gantry_processes": {"worker": {"command": "x", "stop_timeout": 0}}}],
        ["app_processes_services.worker.stop_timeout is", "1 to 86400"],
    ),
    "timer-without-schedule": (
        [{"gantry_timers": {"report": {"command": "flask orders report"}}}],
        ["app_processes_timers.report.on_calendar is", "OnCalendar"],
    ),
    "timer-as-command": (
        [{"gantry_timers": {"report": "flask orders report"}}],
        ["app_processes_timers.report is", "a dict of command, on_calendar"],
    ),
    "timer-hosts-unknown": (
        [{"gantry_timers": {"report": HOURLY_REPORT | {"hosts": "first"}}}],
        ["app_processes_timers.report.hosts is", '"first"', "(the first host of app_servers)"],
    ),
    "profiling-rate-over-one": (
        ["gunicorn_profiling_rate=2"],
        ["gunicorn_profiling_rate is", "from 0 (off) to 1"],
    ),
    "profiling-dir-not-writable": (
        ["gunicorn_profiling_rate=0.1", "gunicorn_profiling_dir=/tmp/profiles"],
        ["gunicorn_profiling_dir is", "/tmp/profiles", "/var/lib/gantry-demo"],
    ),
    "profiling-dir-outside-by-prefix": (
        ["gunicorn_profiling_dir=/var/lib/gantry-demo-other/p"],
        ["gunicorn_profiling_dir is", "the service can write nowhere else"],
    ),
    # The local inventory turns the toolbar on: any other environment refuses it.
    "debug-toolbar-outside-local": (
        ["gantry_environment=staging"],
        ["flask_app_debug_toolbar is true", "unless gantry_environment is local (it is staging)",
         "follows gantry_debug_toolbar"],
    ),
    "gunicorn-debug-toolbar-outside-local": (
        ["gantry_environment=production", "gantry_debug_toolbar=false",
         "gunicorn_debug_toolbar=true"],
        ["gunicorn_debug_toolbar is true", "(it is production)"],
    ),
    "process-and-timer-share-a-name": (
        [{"gantry_processes": {"report": "x"}, "gantry_timers": {"report": HOURLY_REPORT}}],
        ["app_processes_services and app_processes_timers is", '"report"', "share a unit"],
    ),
}


@pytest.mark.parametrize(("extra", "fragments"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_value_is_refused(tmp_path, extra, fragments):
    proc = run_playbook(make_inventory(tmp_path), extra=extra)
    assert_refused_before_hosts(proc, *fragments)


def test_each_bad_input_gets_its_own_message(tmp_path):
    proc = run_playbook(
        make_inventory(tmp_path), extra=["gunicorn_threads=0", "gunicorn_memory_percent=0"]
    )
    assert_refused_before_hosts(proc, "\n- gunicorn_threads is", "\n- gunicorn_memory_percent is")
    output = proc.stdout + proc.stderr
    # The messages of the inputs that were fine do not appear.
    assert "gunicorn_timeout is" not in output


def test_secret_values_are_never_shown(tmp_path):
    secret = "s3cr3t-${HOME}-value"
    proc = run_playbook(
        make_inventory(tmp_path), extra=[{"app_env_secrets": {"API_TOKEN": secret}}]
    )
    assert_refused_before_hosts(proc, "API_TOKEN", "${")
    assert "s3cr3t" not in proc.stdout + proc.stderr


def test_missing_app_name_is_refused(tmp_path):
    proc = run_playbook(make_inventory(tmp_path, drop=["name"]))
    assert_refused_before_hosts(proc, "missing required arguments: name", "gantry_app")


def test_unknown_key_of_the_app_block_is_refused(tmp_path):
    inventory = make_inventory(tmp_path)
    main = inventory / "group_vars" / "all" / "main.yml"
    data = yaml.safe_load(main.read_text())
    data["gantry_app"]["entrypoint"] = "shop:app"
    main.write_text(yaml.safe_dump(data))
    proc = run_playbook(inventory)
    assert_refused_before_hosts(proc, "entrypoint", "gantry_app")


def test_an_inventory_without_the_app_block_is_told_what_replaced_its_settings(tmp_path):
    inventory = make_inventory(tmp_path)
    main = inventory / "group_vars" / "all" / "main.yml"
    data = yaml.safe_load(main.read_text())
    app = data.pop("gantry_app")
    data.update(gantry_app_name=app["name"], gantry_wsgi_app=app["entry_point"])
    main.write_text(yaml.safe_dump(data))
    proc = run_playbook(inventory)
    assert_refused_before_hosts(proc, "gantry_app", "required")


def test_a_role_copy_that_splits_the_app_is_refused(tmp_path):
    proc = run_playbook(make_inventory(tmp_path), extra=["gunicorn_app_root=/opt/shop"])
    assert_refused_before_hosts(
        proc, "The roles disagree on the app's root", "gunicorn_app_root", "/opt/shop"
    )
    assert "the app's user" not in proc.stdout + proc.stderr


def test_the_app_block_sets_each_role_input(tmp_path):
    """What the block says reaches the roles' inputs; a role input set beside it wins."""
    inventory = make_inventory(tmp_path)
    main = inventory / "group_vars" / "all" / "main.yml"
    data = yaml.safe_load(main.read_text())
    data["gantry_app"].update(
        health_path="/-/ping",
        listen={"http": 8080, "https": 8443, "server_names": ["shop.example"]},
        assets={"bucket": "shop-assets", "region": "eu-west-1", "cdn_domain": "cdn.shop"},
        cdn={"zone": "shop.example", "site_url": "https://shop.example", "purge_paths": ["/"]},
    )
    data["s3_static_region"] = "eu-central-1"
    main.write_text(yaml.safe_dump(data))
    play = tmp_path / "show.yml"
    names = [
        "gantry_app_name", "gantry_wsgi_app", "flask_release_health_path",
        "nginx_edge_http_port", "nginx_edge_https_port", "nginx_edge_server_names",
        "s3_static_enabled", "s3_static_bucket", "s3_static_region", "s3_static_cdn_domain",
        "cloudflare_cdn_enabled", "cloudflare_cdn_zone_name", "cloudflare_cdn_site_url",
        "cloudflare_cdn_purge_paths", "app_env_vars",
    ]
    roles = ["flask_release", "nginx_edge", "s3_static", "cloudflare_cdn", "app_env"]
    play.write_text(yaml.safe_dump([{
        "name": "Show what the roles read",
        "hosts": "app_servers[0]",
        "gather_facts": False,
        "vars_files": [str(ROOT / "playbooks" / "vars" / "app.yml")],
        "tasks": [
            {"ansible.builtin.include_role": {"name": "gantry.deploy." + role,
                                              "tasks_from": "validate", "public": True}}
            for role in roles
        ] + [{
            "ansible.builtin.copy": {
                "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (n, n) for n in names),
                "dest": str(tmp_path / "seen.json"),
                "mode": "0644",
            },
            "delegate_to": "localhost",
        }],
    }]))
    proc = run_playbook(inventory, str(play))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {
        "gantry_app_name": "gantry-demo",
        "gantry_wsgi_app": "gantry_demo.wsgi:app",
        "flask_release_health_path": "/-/ping",
        "nginx_edge_http_port": 8080,
        "nginx_edge_https_port": 8443,
        "nginx_edge_server_names": ["shop.example"],
        "s3_static_enabled": True,
        "s3_static_bucket": "shop-assets",
        "s3_static_region": "eu-central-1",
        "s3_static_cdn_domain": "cdn.shop",
        "cloudflare_cdn_enabled": True,
        "cloudflare_cdn_zone_name": "shop.example",
        "cloudflare_cdn_site_url": "https://shop.example",
        "cloudflare_cdn_purge_paths": ["/"],
        "app_env_vars": {"FLASK_DEBUG": "0", "GANTRY_ENVIRONMENT": "local"},
    }

