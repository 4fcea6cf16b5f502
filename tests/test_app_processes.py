"""Role app_processes: the units of the app's processes and timers, rendered by
ansible-playbook with the role's defaults and vars, as systemd reads them.

A command must reach /bin/sh exactly as written: systemd's own quoting, its specifiers
(%) and its variable expansion ($) must leave it alone. The command is checked through
systemd's parser (`systemd-analyze verify` reads it) and, where this machine has no
systemd to run it, by undoing the escaping the template applies and running the result
with /bin/sh; molecule runs such a command under systemd.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gantry_plays import role_play, run_play

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "app_processes"
VERIFY_UNIT = ROOT / "roles" / "gunicorn" / "files" / "verify_unit.py"

# Quotes of both kinds, a backslash, a dollar for the shell, a percent sign for printf,
# a pipe and a redirection: what systemd's quoting, specifiers and variables could eat.
TRICKY = """printf '%s %d%%\\n' "it's \\"quoted\\" $((40 + 2))" 7 | tr a-z A-Z >&2"""
SERVICES = {"worker": "flask orders work", "tricky": {"command": TRICKY, "stop_timeout": 300,
                                                      "memory_max_mb": 256}}
TIMERS = {"report": {"command": "flask orders report", "on_calendar": "*:0/5", "hosts": "all",
                     "timeout": 90}}


def render(tmp_path):
    tasks = []
    for name, template, kind, unit in [
        ("worker", "process.service", "process", {"name": "worker"}),
        ("tricky", "process.service", "process", {"name": "tricky"}),
        ("report", "process.service", "timer", {"name": "report"}),
        ("report-timer", "timer.timer", "timer", {"name": "report"}),
    ]:
        tasks.append({
            "name": f"Render {name}",
            "ansible.builtin.template": {"src": str(ROLE / "templates" / f"{template}.j2"),
                                         "dest": str(tmp_path / name), "mode": "0644"},
            "vars": {"__unit_kind": kind,
                     "__unit": "{{ (__app_processes_services + __app_processes_timers)"
                               f" | selectattr('name', 'equalto', '{unit['name']}') | first }}}}"},
        })
    extra = {"gantry_app_name": "shop", "gantry_wsgi_app": "shop:create_app('prod')",
             "gantry_processes": SERVICES, "gantry_timers": TIMERS}
    rc, output = run_play(tmp_path, role_play(ROLE, tasks), extra)
    assert rc == 0, output
    names = ["worker", "tricky", "report", "report-timer"]
    return {name: (tmp_path / name).read_text() for name in names}


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    return render(tmp_path_factory.mktemp("units"))


def directives(text):
    return [line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z]\w*=", line)]


def value(text, key):
    values = [v for k, v in directives(text) if k == key]
    assert len(values) == 1, (key, values)
    return values[0]


def unescape_exec_start(argument):
    """The one double-quoted argument of ExecStart=/bin/sh -c "...", as systemd passes
    it: backslash escapes, %% for %, $$ for $."""
    assert argument.startswith('"') and argument.endswith('"'), argument
    body = argument[1:-1]
    assert not re.search(r"(?<!%)%(?!%)", body.replace("%%", "")), "a bare % is a specifier"
    body = re.sub(r"\\(.)", r"\1", body)
    return body.replace("%%", "%").replace("$$", "$")


def test_the_command_reaches_the_shell_unchanged(units, tmp_path):
    exec_start = value(units["tricky"], "ExecStart")
    assert exec_start.startswith("/bin/sh -c ")
    script = unescape_exec_start(exec_start[len("/bin/sh -c "):])
    assert script == "exec " + TRICKY
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stderr == 'IT\'S "QUOTED" 42 7%\n', proc


def test_a_process_restarts_and_gets_its_stop_timeout(units):
    worker, tricky = units["worker"], units["tricky"]
    assert value(worker, "Type") == "exec" and value(worker, "Restart") == "on-failure"
    # app_processes_stop_timeout, the default, and the process's own.
    assert value(worker, "TimeoutStopSec") == "120"
    assert value(tricky, "TimeoutStopSec") == "300"
    assert value(tricky, "MemoryMax") == "256M"
    assert "MemoryMax" not in dict(directives(worker))
    assert value(worker, "User") == "shop"
    assert value(worker, "EnvironmentFile") == "/etc/shop/instances/%i/env"
    assert value(worker, "WorkingDirectory") == "/srv/shop/instances/%i"
    assert "WantedBy=multi-user.target" in worker


def test_the_job_of_a_timer_runs_once_and_has_its_timeout(units):
    job, timer = units["report"], units["report-timer"]
    assert value(job, "Type") == "oneshot"
    assert value(job, "TimeoutStartSec") == "90"
    assert "Restart" not in dict(directives(job))
    # Started by its timer only.
    assert "[Install]" not in job
    assert value(timer, "OnCalendar") == "*:0/5"
    assert value(timer, "AccuracySec") == "1s"
    assert "WantedBy=timers.target" in timer


def test_commands_find_the_release_venv_and_the_factory(units):
    environment = [v for k, v in directives(units["worker"]) if k == "Environment"]
    assert '"PATH=/srv/shop/instances/%i/venv/bin:/usr/local/bin:/usr/bin:/bin"' in environment
    assert "\"FLASK_APP=shop:create_app('prod')\"" in environment


@pytest.mark.parametrize("name", ["worker", "tricky", "report", "report-timer"])
def test_systemd_accepts_the_units(units, tmp_path, name):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here")
    unit_name = {"report-timer": "shop_report@.timer"}.get(name, f"shop_{name}@.service")
    for other, text in units.items():
        # A timer's verification loads the service it starts, from the same directory.
        other_name = {"report-timer": "shop_report@.timer"}.get(other, f"shop_{other}@.service")
        (tmp_path / other_name).write_text(text)
    proc = subprocess.run([sys.executable, str(VERIFY_UNIT), str(tmp_path / unit_name), unit_name,
                           "/srv/shop"], capture_output=True, text=True, timeout=180)
    if "cannot run systemd-analyze" in proc.stderr or "Failed to " in proc.stderr:
        pytest.skip(f"systemd-analyze cannot verify units here: {proc.stderr[:300]}")
    assert proc.returncode == 0, proc.stderr


HARDENING = ("NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem",
             "ReadWritePaths", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateIPC",
             "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
             "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc",
             "ProcSubset", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
             "RestrictSUIDSGID", "RemoveIPC", "LockPersonality", "MemoryDenyWriteExecute",
             "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber",
             "DevicePolicy", "KeyringMode", "UMask")


def hardening(text):
    return [(k, v) for k, v in directives(text) if k in HARDENING]


@pytest.mark.parametrize(("read_write_paths", "deny_write_execute"),
                         [([], True), (["/srv/shop-data", "/var/cache/shop"], False)])
def test_processes_and_timers_get_the_web_servers_sandbox(tmp_path, read_write_paths,
                                                          deny_write_execute):
    gunicorn = ROOT / "roles" / "gunicorn"
    settings = {"gantry_app_name": "shop", "gantry_wsgi_app": "shop:app",
                "gantry_processes": {"worker": "flask orders work"},
                "gunicorn_read_write_paths": read_write_paths,
                "app_processes_read_write_paths": read_write_paths,
                "gunicorn_memory_deny_write_execute": deny_write_execute,
                "app_processes_memory_deny_write_execute": deny_write_execute}
    rendered = {}
    for role, template, unit_vars in [
        (gunicorn, "gunicorn.service",
         {"ansible_facts": {"processor_vcpus": 2, "memtotal_mb": 4096}}),
        (ROLE, "process.service", {"__unit_kind": "process",
                                   "__unit": "{{ __app_processes_services | first }}"}),
    ]:
        task = {"name": f"Render {template}", "vars": unit_vars,
                "ansible.builtin.template": {"src": str(role / "templates" / f"{template}.j2"),
                                             "dest": str(tmp_path / template), "mode": "0644"}}
        rc, output = run_play(tmp_path / f"play-{template}", role_play(role, [task]), settings)
        assert rc == 0, output
        rendered[template] = (tmp_path / template).read_text()
    web, worker = hardening(rendered["gunicorn.service"]), hardening(rendered["process.service"])
    assert web == worker
    assert ("ReadWritePaths", " ".join(read_write_paths)) in web or not read_write_paths
    assert (("MemoryDenyWriteExecute", "yes") in web) == deny_write_execute
    assert len({k for k, _ in web}) >= len(HARDENING) - 2
