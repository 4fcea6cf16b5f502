"""Gantry as the collection gantry.deploy: built with ansible-galaxy from this checkout,
installed into a project of a user's own (not this repository, not its ansible.cfg),
and run from there by FQCN on an app Gantry did not write."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("gantry-deploy-*.tar.gz")
    return tarball


def test_the_tarball_holds_what_a_project_needs_and_nothing_of_ours(built):
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert built.name == f"gantry-deploy-{galaxy['version']}.tar.gz"
    with tarfile.open(built) as archive:
        names = set(archive.getnames())
    for needed in ["MANIFEST.json", "meta/runtime.yml", "playbooks/site.yml",
                   "playbooks/rollback.yml", "playbooks/vars/reserved_names.yml",
                   "roles/gunicorn/tasks/main.yml", "roles/gunicorn/templates/memory_watch.py",
                   "plugins/modules/worker_memory.py", "plugins/module_utils/gantry_s3.py",
                   "plugins/filter/gantry_check_output.py", "tools/vault-pass-client"]:
        assert needed in names, needed
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"molecule", "tests", "bench", "examples", "inventories", ".venv",
                       ".collections", ".gantry", ".ci", "Makefile"}, tops


EXAMPLE = ROOT / "examples" / "user_project"


@pytest.fixture(scope="module")
def project(built, tmp_path_factory):
    """examples/user_project, a user's project (its own ansible.cfg, inventory and vault; its
    app examples/factory_app, which knows nothing of us), with the collection installed from
    the tarball: nothing of this checkout is on its path."""
    home = tmp_path_factory.mktemp("project") / "user_project"
    shutil.copytree(EXAMPLE, home, ignore=shutil.ignore_patterns("collections"))
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", "collections", str(built)],
        cwd=home, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The app stays where the example's inventory expects it, beside the project.
    (home.parent / "factory_app").symlink_to(ROOT / "examples" / "factory_app")
    # The example's host does not exist here: the run stops at the first host contact.
    hosts = home / "inventories" / "local" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    inventory["app_servers"]["hosts"] = {"gantry-no-such-host-1": {}}
    hosts.write_text(yaml.safe_dump(inventory))
    return home


def run(project, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env |= {"ANSIBLE_CONFIG": str(project / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=project, capture_output=True,
                          text=True, env=env, timeout=300)


def test_a_project_deploys_by_fqcn_up_to_its_first_host(project):
    proc = run(project, "ansible-playbook", "gantry.deploy.site")
    output = proc.stdout + proc.stderr
    # Every controller-side check passed; the first host contact fails on a host that
    # does not exist.
    assert "PLAY [Check each host can take the app]" in output, output
    before_probe = output.split("PLAY [Check each host can take the app]")[0]
    assert "fatal" not in before_probe and "Invalid input" not in before_probe, output
    assert re.search(r"gantry-no-such-host-1 +: .*(unreachable=1|failed=1)", output), output


def test_a_project_reads_the_modules_docs_by_fqcn(project):
    proc = run(project, "ansible-doc", "--json", "gantry.deploy.worker_memory")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["gantry.deploy.worker_memory"]
    assert str(project / "collections") in doc["doc"]["filename"]


def test_the_example_installs_gantry_from_this_checkout(tmp_path):
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-r", "requirements.yml",
         "-p", str(tmp_path)], cwd=EXAMPLE, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = tmp_path / "ansible_collections" / "gantry" / "deploy"
    assert (installed / "playbooks" / "site.yml").is_file()
    assert os.access(installed / "tools" / "vault-pass-client", os.X_OK)
    assert not (installed / "examples").exists()
