"""The controller-side release build: release ids follow content, wheels follow the host."""

import importlib.util
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "build_release", ROOT / "roles/flask_app/files/build_release.py")
build_release = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_release)

DEMO = ROOT / "examples" / "flask_demo"


def copy_demo(tmp_path):
    tree = tmp_path / "app"
    shutil.copytree(DEMO, tree, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return tree


def digest(tree):
    return build_release.source_digest(tree, [tree / "requirements.txt"], ["gunicorn==26.1.0"])


def test_digest_ignores_mtimes_and_build_leftovers(tmp_path):
    tree = copy_demo(tmp_path)
    before = digest(tree)
    for path in tree.rglob("*"):
        os.utime(path, (1, 1))
    (tree / "build" / "lib").mkdir(parents=True)
    (tree / "build" / "lib" / "leftover.py").write_text("x = 1\n")
    (tree / "gantry_demo" / "__pycache__").mkdir(exist_ok=True)
    (tree / "gantry_demo" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert digest(tree) == before


def test_digest_changes_with_code_requirements_and_server(tmp_path):
    tree = copy_demo(tmp_path)
    before = digest(tree)
    views = tree / "gantry_demo" / "views.py"
    views.write_text(views.read_text() + "\n# same size edits count too\n")
    after_code = digest(tree)
    assert after_code != before
    assert build_release.source_digest(
        tree, [tree / "requirements.txt"], ["gunicorn==26.2.0"]) != after_code


def test_platform_tags_cover_older_glibc_down_to_manylinux2014():
    tags = build_release.platform_tags("2.36", "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags
    assert "manylinux2014_x86_64" in tags
    assert all(tag.endswith("x86_64") for tag in tags)
