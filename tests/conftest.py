"""Fixtures shared by the test files, and this checkout as the collection gantry.deploy."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".collections"


def link_collection():
    """.collections/ansible_collections/gantry/deploy -> this checkout, as `make deps`
    makes it: ansible.cfg's collections_path finds gantry.deploy there, and Python
    imports our module_utils as ansible_collections.gantry.deploy.plugins.module_utils."""
    link = COLLECTIONS / "ansible_collections" / "gantry" / "deploy"
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to("../../..", target_is_directory=True)
    except FileExistsError:
        pass  # made by make, or by another test worker


link_collection()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from cloudflare_standin import CloudflareStandIn  # noqa: E402


@pytest.fixture
def cf():
    """The Cloudflare stand-in (a test double) with one zone, example.com."""
    with CloudflareStandIn() as standin:
        standin.zone = standin.add_zone("example.com")
        yield standin
