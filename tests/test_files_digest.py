"""gantry_files_digest: one sha256 of the names and contents of the files under some
directories (plugins/filter), the part of the deploy fingerprint that is Gantry itself."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location(
    "gantry_files_digest", ROOT / "plugins/filter/gantry_files_digest.py")
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
digest = plugin.gantry_files_digest


@pytest.fixture
def tree(tmp_path):
    """roles/ and plugins/ of a small checkout."""
    roles = tmp_path / "roles"
    (roles / "web" / "tasks").mkdir(parents=True)
    (roles / "web" / "tasks" / "main.yml").write_text("- debug: msg=hi\n")
    (roles / "web" / "README.md").write_text("web\n")
    plugins = tmp_path / "plugins"
    (plugins / "filter").mkdir(parents=True)
    (plugins / "filter" / "f.py").write_text("X = 1\n")
    return [str(roles), str(plugins)]


def test_the_filter_is_registered():
    assert plugin.FilterModule().filters() == {"gantry_files_digest": digest}


def test_the_same_tree_elsewhere_gives_the_same_digest(tree, tmp_path):
    copy = [shutil.copytree(d, tmp_path / "copy" / Path(d).name) for d in tree]
    assert digest(tree) == digest([str(d) for d in copy]) == digest(tree)
    assert len(digest(tree)) == 64


@pytest.mark.parametrize("change", [
    lambda r: (r / "web/tasks/main.yml").write_text("- debug: msg=bye\n"),
    lambda r: (r / "web/README.md").rename(r / "web/README.txt"),
    lambda r: (r / "web/tasks/extra.yml").write_text(""),
    lambda r: (r / "web/README.md").unlink(),
], ids=["content", "rename", "added", "removed"])
def test_a_change_changes_the_digest(tree, change):
    before = digest(tree)
    change(Path(tree[0]))
    assert digest(tree) != before


def test_byte_code_caches_are_left_out(tree):
    before = digest(tree)
    cache = Path(tree[1]) / "filter" / "__pycache__"
    cache.mkdir()
    (cache / "f.cpython-311.pyc").write_bytes(b"\x00code")
    (cache / "notes.txt").write_text("not a .pyc, still in __pycache__\n")
    (Path(tree[1]) / "filter" / "old.pyc").write_bytes(b"\x00code")
    assert digest(tree) == before


def test_file_modes_do_not_count(tree):
    before = digest(tree)
    (Path(tree[0]) / "web/README.md").chmod(0o600)
    (Path(tree[0]) / "web/tasks/main.yml").chmod(0o755)
    assert digest(tree) == before


def test_a_missing_directory_counts_as_empty(tree, tmp_path):
    (tmp_path / "empty").mkdir()
    missing = str(tmp_path / "missing")
    assert digest([missing]) == digest([str(tmp_path / "empty")])
    assert digest([missing, tree[1]]) == digest([str(tmp_path / "empty"), tree[1]])
    assert digest([missing, tree[1]]) != digest([tree[1]])


def test_the_order_of_the_directories_counts(tree, tmp_path):
    assert digest(tree) != digest(tree[::-1])
    # The same file in the first directory or in the second is not the same.
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "x").write_text("1")
    before = digest([str(first), str(second)])
    (first / "x").rename(second / "x")
    assert digest([str(first), str(second)]) != before


def test_a_link_to_nothing_counts_by_where_it_points(tree):
    link = Path(tree[0]) / "web" / "dangling"
    link.symlink_to("nowhere")
    before = digest(tree)
    link.unlink()
    link.symlink_to("elsewhere")
    assert digest(tree) != before


def test_files_behind_a_linked_directory_count(tree, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "y.yml").write_text("1\n")
    (Path(tree[0]) / "linked").symlink_to(shared)
    before = digest(tree)
    (shared / "y.yml").write_text("2\n")
    assert digest(tree) != before
