"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse, so `ansible-doc` renders them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name):
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", "-t", "module",
         f"gantry.deploy.{name}"],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)[f"gantry.deploy.{name}"]
    assert doc["doc"]["options"] and doc["examples"].strip() and doc["return"], name
