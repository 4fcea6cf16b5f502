"""The controller-side release build: release ids follow content, wheels follow the host."""

import importlib.util
import io
import json
import os
import platform
import shutil
import sys
import tarfile
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


def tiny_app(root, version="1.0", dependencies=()):
    """A pip-installable app we did not write: one module, no static folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "tiny-shop"\nversion = "{version}"\n'
        f"dependencies = {list(dependencies)!r}\n".replace("'", '"')
        + '[tool.setuptools]\npy-modules = ["tiny_shop"]\n')
    (root / "tiny_shop.py").write_text("def app(environ, start_response):\n    return []\n")
    (root / "requirements.txt").write_text("itsdangerous==2.2.0\n")
    return root


def build(monkeypatch, source, build_dir, release_id, target):
    """One run of the build script in this process, recording the pip commands it ran."""
    commands = []
    real_run = build_release.run

    def recording_run(cmd):
        commands.append(cmd)
        real_run(cmd)

    monkeypatch.setattr(build_release, "run", recording_run)
    monkeypatch.setattr("sys.argv", [
        "build_release.py", "--source", str(source), "--requirements",
        str(source / "requirements.txt"), "--release-id", release_id, "--build-dir",
        str(build_dir), "--extra", "blinker==1.9.0", "--target", target])
    output = io.StringIO()
    monkeypatch.setattr("sys.stdout", output)
    build_release.main()
    return json.loads(output.getvalue()), [" ".join(cmd) for cmd in commands]


def tarball_wheels(path):
    with tarfile.open(path) as tar:
        return sorted(Path(name).name for name in tar.getnames() if name.endswith(".whl"))


def test_a_code_only_release_reuses_the_dependencies_it_resolved_before(tmp_path, monkeypatch):
    target = "cp%d%d:%s:%s" % (*sys.version_info[:2], platform.libc_ver()[1], platform.machine())
    source = tiny_app(tmp_path / "app")
    first, first_commands = build(monkeypatch, source, tmp_path / "build", "r1", target)
    assert any(" download " in cmd for cmd in first_commands)

    (source / "tiny_shop.py").write_text("def app(environ, start_response):\n    return [b'2']\n")
    second, second_commands = build(monkeypatch, source, tmp_path / "build", "r2", target)
    # Only the app's own wheel is built: nothing is resolved or downloaded again.
    assert len(second_commands) == 2, second_commands
    assert "--no-deps" in second_commands[0]
    assert " download " not in " ".join(second_commands)
    assert second["targets"][target]["deps"] == first["targets"][target]["deps"]
    assert second["content"] != first["content"]

    first_wheels = tarball_wheels(first["targets"][target]["tarball"])
    second_wheels = tarball_wheels(second["targets"][target]["tarball"])
    assert first_wheels == second_wheels
    assert {"itsdangerous-2.2.0-py3-none-any.whl", "blinker-1.9.0-py3-none-any.whl",
            "tiny_shop-1.0-py3-none-any.whl"} == set(second_wheels)
    # Each release's tarball holds its own code.
    with tarfile.open(second["targets"][target]["tarball"]) as tar:
        assert tar.extractfile("install.txt").read().decode().splitlines() == [
            "tiny-shop==1.0", "blinker==1.9.0", "itsdangerous==2.2.0"]


def test_new_declared_or_listed_dependencies_are_resolved_again(tmp_path, monkeypatch):
    target = "cp%d%d:%s:%s" % (*sys.version_info[:2], platform.libc_ver()[1], platform.machine())
    source = tiny_app(tmp_path / "app")
    first, _ = build(monkeypatch, source, tmp_path / "build", "r1", target)

    tiny_app(source, dependencies=["markupsafe==3.0.2"])
    declared, commands = build(monkeypatch, source, tmp_path / "build", "r2", target)
    assert any(" download " in cmd for cmd in commands)
    assert declared["targets"][target]["deps"] != first["targets"][target]["deps"]
    assert any(name.startswith("MarkupSafe-3.0.2") or name.startswith("markupsafe-3.0.2")
               for name in tarball_wheels(declared["targets"][target]["tarball"]))

    (source / "requirements.txt").write_text("itsdangerous==2.1.2\n")
    listed, commands = build(monkeypatch, source, tmp_path / "build", "r3", target)
    assert any(" download " in cmd for cmd in commands)
    assert "itsdangerous-2.1.2-py3-none-any.whl" in tarball_wheels(
        listed["targets"][target]["tarball"])
