"""Vault passwords per environment (vault ids local, staging, production).

local's demo vault opens with no input; staging and production take their password from
GANTRY_VAULT_PASSWORD_<ID> (else GANTRY_VAULT_PASSWORD) or --vault-id; without one nothing
is encrypted and a deploy stops before any host with a message saying how to give it.
"""

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLIENT = ROOT / "tools" / "vault-pass-client"
LOCAL_VAULT = ROOT / "inventories" / "local" / "group_vars" / "all" / "vault.yml"
HOW_TO = [
    "GANTRY_VAULT_PASSWORD_PRODUCTION",
    "GANTRY_VAULT_PASSWORD)",
    "--vault-id production@prompt",
    "--vault-id production@/path/to/your/file-or-script",
]


def clean_env(**extra):
    """This environment without any vault password or vault setting, plus extra."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("GANTRY_VAULT_PASSWORD", "ANSIBLE_VAULT", "ANSIBLE_ASK_VAULT"))}
    env.update(ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", **extra)
    return env


def run(program, *args, **env):
    return subprocess.run(
        [str(BIN / program), *map(str, args)], cwd=ROOT, env=clean_env(**env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )


def vault_warnings(proc):
    return [line for line in proc.stderr.splitlines() if "WARNING" in line and "vault" in line]


def test_local_vault_is_for_vault_id_local_and_opens_with_no_input():
    assert LOCAL_VAULT.read_text().splitlines()[0] == "$ANSIBLE_VAULT;1.2;AES256;local"
    proc = run("ansible-vault", "view", LOCAL_VAULT)
    assert proc.returncode == 0, proc.stderr
    assert "vault_gantry_secret_key:" in proc.stdout
    assert vault_warnings(proc) == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["encrypt", "--encrypt-vault-id", "production"], HOW_TO),
        # The old trap: with no id named, the demo password was the only one there.
        (["encrypt"], ["without --encrypt-vault-id", "--encrypt-vault-id production"]),
    ],
    ids=["production", "no-id-named"],
)
def test_encrypt_without_password_is_refused(tmp_path, args, fragments):
    secret_file = tmp_path / "vault.yml"
    secret_file.write_text("vault_gantry_secret_key: not-encrypted-yet\n")
    before = secret_file.read_bytes()
    proc = run("ansible-vault", *args, secret_file)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr
    assert secret_file.read_bytes() == before


def test_encrypt_string_without_password_prints_nothing_encrypted():
    proc = run("ansible-vault", "encrypt_string", "--encrypt-vault-id", "production", "s3cr3t")
    assert proc.returncode != 0
    assert "$ANSIBLE_VAULT" not in proc.stdout
    for fragment in HOW_TO:
        assert fragment in proc.stderr, proc.stderr


def test_production_vault_opens_only_with_the_production_password(tmp_path):
    secret_file = tmp_path / "vault.yml"
    secret_file.write_text("vault_gantry_secret_key: production-only\n")
    proc = run("ansible-vault", "encrypt", "--encrypt-vault-id", "production", secret_file,
               GANTRY_VAULT_PASSWORD_PRODUCTION="pw-production")
    assert proc.returncode == 0, proc.stderr
    assert vault_warnings(proc) == []
    assert secret_file.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;production\n")

    for env in ({"GANTRY_VAULT_PASSWORD_PRODUCTION": "pw-production"},
                {"GANTRY_VAULT_PASSWORD": "pw-production"}):
        proc = run("ansible-vault", "view", secret_file, **env)
        assert proc.returncode == 0, proc.stderr
        assert "production-only" in proc.stdout

    # Another id's password, even the right one under another id (vault_id_match), and
    # local's demo password (always there) open nothing.
    for env in ({"GANTRY_VAULT_PASSWORD_STAGING": "pw-staging"},
                {"GANTRY_VAULT_PASSWORD_STAGING": "pw-production"},
                {}):
        proc = run("ansible-vault", "view", secret_file, **env)
        assert proc.returncode != 0, env
        assert "production-only" not in proc.stdout + proc.stderr


def test_client_outside_ansible():
    env = clean_env()
    local = subprocess.run([CLIENT, "--vault-id", "local"], capture_output=True, text=True,
                           env=env, check=True)
    assert local.stdout == "gantry-local-demo\n"
    # A parent it cannot tell might encrypt with what it prints: no password at all.
    production = subprocess.run([CLIENT, "--vault-id", "production"], capture_output=True,
                                text=True, env=env)
    assert production.returncode == 2
    assert production.stdout == ""
    for fragment in HOW_TO:
        assert fragment in production.stderr
    env["GANTRY_VAULT_PASSWORD_PRODUCTION"] = "pw-production"
    given = subprocess.run([CLIENT, "--vault-id", "production"], capture_output=True,
                           text=True, env=env, check=True)
    assert given.stdout == "pw-production\n"


def production_inventory(tmp_path, secret, whole_file):
    """A production inventory whose hosts do not exist: reaching one would be UNREACHABLE."""
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventories" / "production" / "group_vars", inventory / "group_vars")
    (inventory / "hosts.yml").write_text(yaml.safe_dump({
        "app_servers": {
            "hosts": {"gantry-no-such-host-1": {}, "gantry-no-such-host-2": {}},
            "vars": {"ansible_connection": "community.docker.docker"},
        }
    }))
    vault = inventory / "group_vars" / "all" / "vault.yml"
    if whole_file:
        vault.write_text(f"---\nvault_gantry_secret_key: {secret}\n")
        proc = run("ansible-vault", "encrypt", "--encrypt-vault-id", "production", vault,
                   GANTRY_VAULT_PASSWORD_PRODUCTION="pw-production")
    else:
        proc = run("ansible-vault", "encrypt_string", "--encrypt-vault-id", "production",
                   "--name", "vault_gantry_secret_key", secret,
                   GANTRY_VAULT_PASSWORD_PRODUCTION="pw-production")
        vault.write_text("---\n" + proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert "$ANSIBLE_VAULT;1.2;AES256;production" in vault.read_text()
    return inventory, vault


@pytest.mark.parametrize("whole_file", [True, False], ids=["whole-file", "encrypt-string"])
def test_deploy_without_the_password_stops_before_any_host(tmp_path, whole_file):
    secret = "gantry-test-" + secrets.token_hex(8)
    inventory, vault = production_inventory(tmp_path, secret, whole_file)

    proc = run("ansible-playbook", "-i", inventory, "playbooks/vault.yml")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    # A host contacted ends UNREACHABLE, or with pipelining in a failed module run.
    assert "UNREACHABLE" not in output and "No such container" not in output, output
    assert secret not in output
    for fragment in HOW_TO:
        assert fragment in output, output
    if whole_file:
        # Ansible stops while reading group_vars, before any task: the client says it.
        assert f"{vault} is encrypted for vault id 'production', which has no password" in output
    else:
        assert (f"The vault of inventory {inventory} (gantry_environment production) could "
                "not be opened for vault id 'production'") in output, output

    proc = run("ansible-playbook", "-i", inventory, "playbooks/vault.yml",
               GANTRY_VAULT_PASSWORD_PRODUCTION="pw-production")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert secret not in output
    assert vault_warnings(proc) == []

    password_file = tmp_path / "production-password"
    password_file.write_text("pw-production\n")
    proc = run("ansible-playbook", "-i", inventory, "--vault-id",
               f"production@{password_file}", "playbooks/vault.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert vault_warnings(proc) == []


def test_wrong_password_gets_the_playbook_message(tmp_path):
    secret = "gantry-test-" + secrets.token_hex(8)
    inventory, _ = production_inventory(tmp_path, secret, whole_file=False)
    proc = run("ansible-playbook", "-i", inventory, "playbooks/vault.yml",
               GANTRY_VAULT_PASSWORD_PRODUCTION="not-the-password")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    # A host contacted ends UNREACHABLE, or with pipelining in a failed module run.
    assert "UNREACHABLE" not in output and "No such container" not in output, output
    assert secret not in output
    assert "could not be opened for vault id 'production'" in output, output
    assert "--ask-vault-pass alone does not work" in output


@pytest.mark.parametrize("args", [["-i", "inventories/local"], []], ids=["-i local", "default"])
def test_local_run_prints_no_vault_warning(args):
    proc = run("ansible-playbook", *args, "playbooks/vault.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert vault_warnings(proc) == [], proc.stderr
    assert "local-demo-secret-key" not in proc.stdout + proc.stderr
