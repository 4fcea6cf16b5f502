"""Build a release of a Flask app on the controller, once, for every target host kind.

Hosts get no index access: everything they install comes from a wheelhouse built here.
Compiled wheels are tied to a Python version, glibc and architecture, so the wheelhouse is
made per target (``cp313:2.41:x86_64``). The app's own wheel is built once per release;
pure dependency wheels, including any built from an sdist, are shared by every target.

Dependencies are resolved once per distinct set of requirements (the requirements file,
the extras and the app's own declared dependencies) and kept under ``.deps``: a release
that changes only code builds its own wheel and reuses them. A requirement left unpinned
therefore keeps the version it first resolved to until the requirements change.

Prints one JSON object. Every step leaves a finished artefact behind an atomic rename,
so an interrupted build is simply redone and a finished one is never rebuilt.
"""

import argparse
import email.parser
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

SKIPPED_DIRS = {
    "__pycache__", ".git", ".venv", "build", "dist", ".pytest_cache", ".ruff_cache",
    "node_modules",
}


def source_digest(source, requirement_files, extra_requirements):
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(root, name)
            digest.update(str(path.relative_to(source)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    for req in requirement_files:
        digest.update(Path(req).read_bytes() + b"\0")
    digest.update("\n".join(extra_requirements).encode())
    return digest.hexdigest()


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(f"command failed ({proc.returncode}): {' '.join(cmd)}\n")
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        sys.exit(proc.returncode)


def pip(*args):
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]


def requirement_args(requirement_files, extra_requirements):
    args = []
    for req in requirement_files:
        args += ["-r", str(req)]
    return args + list(extra_requirements)


def finish(scratch, final):
    """Move a finished artefact into place; another build may have finished it first."""
    (scratch / ".complete").touch()
    try:
        scratch.rename(final)
    except OSError:
        if not (final / ".complete").exists():
            raise
        shutil.rmtree(scratch)


def build_app_wheel(release_dir, source):
    """The app's own wheel, alone: its dependencies come from the dependency cache."""
    app_dir = release_dir / "app"
    if not (app_dir / ".complete").exists():
        shutil.rmtree(app_dir, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(dir=release_dir, prefix=".app-"))
        # setuptools builds in the tree it is given: build a copy, never the user's checkout.
        tree = Path(tempfile.mkdtemp(dir=release_dir, prefix=".source-")) / "src"
        shutil.copytree(source, tree, ignore=shutil.ignore_patterns(*SKIPPED_DIRS, "*.egg-info"))
        run(pip("wheel", "--no-deps", "--wheel-dir", str(scratch), str(tree)))
        shutil.rmtree(tree.parent)
        finish(scratch, app_dir)
        built = True
    else:
        built = False
    wheels = list(app_dir.glob("*.whl"))
    if len(wheels) != 1:
        sys.exit(f"building {source} gave {len(wheels)} wheels, not one")
    with zipfile.ZipFile(wheels[0]) as archive:
        metadata = next(name for name in archive.namelist()
                        if name.count("/") == 1 and name.endswith(".dist-info/METADATA"))
        headers = email.parser.BytesHeaderParser().parsebytes(archive.read(metadata))
    requirement = f"{headers['Name']}=={headers['Version']}"
    return app_dir, wheels[0], requirement, headers.get_all("Requires-Dist") or [], built


def drop_app_wheel(wheels, app_dir):
    """pip puts the app's wheel beside its dependencies; the cache keeps dependencies only."""
    for wheel in wheels.glob("*.whl"):
        if (app_dir / wheel.name).exists():
            wheel.unlink()


def dependency_key(requirement_files, extra_requirements, declared):
    """What decides the dependency wheels: resolved once per distinct key, not per release."""
    digest = hashlib.sha256()
    for req in requirement_files:
        digest.update(Path(req).read_bytes() + b"\0")
    digest.update("\n".join([*extra_requirements, "", *declared]).encode())
    digest.update(f"{sys.implementation.cache_tag}:{platform.machine()}".encode())
    return digest.hexdigest()[:16]


def build_common(deps_dir, app_dir, app_req, requirement_files, extra_requirements):
    """Wheels of the dependencies for the controller's own Python, pure ones included."""
    common = deps_dir / "common"
    if (common / ".complete").exists():
        return common, False
    deps_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=deps_dir, prefix=".common-"))
    run(pip("wheel", "--wheel-dir", str(scratch), "--find-links", str(app_dir), app_req,
            *requirement_args(requirement_files, extra_requirements)))
    drop_app_wheel(scratch, app_dir)
    finish(scratch, common)
    return common, True


def platform_tags(glibc, arch):
    major, minor = (int(part) for part in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    return tags + [f"manylinux2014_{arch}", f"linux_{arch}"]


def target_dependencies(deps_dir, target, app_dir, common, app_req, requirement_files,
                        extra_requirements):
    """The dependency wheels one kind of host installs, downloaded once per key."""
    cached = deps_dir / target.replace(":", "-")
    if (cached / ".complete").exists():
        return cached, False
    python, glibc, arch = target.split(":")
    pyver = python.removeprefix("cp")
    scratch = Path(tempfile.mkdtemp(dir=deps_dir, prefix=".target-"))
    args = ["download", "--dest", str(scratch), "--only-binary=:all:",
            "--find-links", str(app_dir), "--find-links", str(common),
            "--implementation", "cp", "--python-version", f"{pyver[0]}.{pyver[1:]}",
            "--abi", python, "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(glibc, arch):
        args += ["--platform", tag]
    run(pip(*args, app_req, *requirement_args(requirement_files, extra_requirements)))
    drop_app_wheel(scratch, app_dir)
    finish(scratch, cached)
    return cached, True


def build_target(release_dir, target, app_wheel, dependencies, app_req, requirement_files,
                 extra_requirements):
    """A tarball holding wheels/ and install.txt for one kind of host."""
    tarball = release_dir / f"{target.replace(':', '-')}.tar.gz"
    deps_file = tarball.with_suffix(".deps")
    if tarball.exists() and deps_file.exists():
        return tarball, deps_file.read_text().strip(), False
    lines = [app_req, *extra_requirements]
    for req in requirement_files:
        lines += [line for line in Path(req).read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith(("#", "-"))]
    # A release whose dependencies match the running one can be hot-reloaded; any other
    # needs a restart, so the deploy compares this digest.
    dep_wheels = sorted(dependencies.glob("*.whl"))
    deps = hashlib.sha256("\n".join(w.name for w in dep_wheels).encode()).hexdigest()[:16]
    partial = Path(tempfile.mkstemp(dir=release_dir, prefix=".target-", suffix=".tar.gz")[1])
    # Wheels are zip files already: gzip gains little on them and costs seconds at level 9.
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        folder = tarfile.TarInfo("wheels")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for wheel in [app_wheel, *dep_wheels]:
            tar.add(wheel, arcname=f"wheels/{wheel.name}")
        info = tarfile.TarInfo("install.txt")
        text = ("\n".join(lines) + "\n").encode()
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    partial.rename(tarball)
    deps_file.write_text(deps + "\n")
    return tarball, deps, True


def build_controller_venv(release_dir, app_dir, common, app_req, requirement_files):
    """The app installed on the controller, for steps that must import it (static folders)."""
    target = release_dir / "venv"
    if (target / ".complete").exists():
        return target, False
    shutil.rmtree(target, ignore_errors=True)
    # No pip of its own (ensurepip alone takes seconds): this pip installs into it.
    venv.EnvBuilder(with_pip=False).create(target)
    run(pip("--python", str(target / "bin" / "python"), "install", "--quiet", "--no-index",
            "--find-links", str(app_dir), "--find-links", str(common), app_req,
            *requirement_args(requirement_files, [])))
    (target / ".complete").touch()
    return target, True


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--requirements", default="")
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--release-id", default="")
    parser.add_argument("--build-dir", required=True, type=Path)
    parser.add_argument("--target", action="append", default=[])
    opts = parser.parse_args()

    source = opts.source.resolve()
    if not (source / "pyproject.toml").exists():
        sys.exit(f"{source} has no pyproject.toml: the app must be a pip-installable project")
    requirement_files = [Path(opts.requirements)] if opts.requirements else []
    content = source_digest(source, requirement_files, opts.extra)
    release_id = opts.release_id or content[:12]
    release_dir = opts.build_dir / release_id
    # A release id given by hand may be reused for other content: never serve a stale build.
    content_file = release_dir / "CONTENT"
    if release_dir.exists() and (
            not content_file.exists() or content_file.read_text().strip() != content):
        shutil.rmtree(release_dir)
    release_dir.mkdir(parents=True, exist_ok=True)
    content_file.write_text(content + "\n")

    app_dir, app_wheel, app_req, declared, changed = build_app_wheel(release_dir, source)
    deps_dir = opts.build_dir / ".deps" / dependency_key(requirement_files, opts.extra, declared)
    common, common_changed = build_common(
        deps_dir, app_dir, app_req, requirement_files, opts.extra)
    controller_venv, venv_changed = build_controller_venv(
        release_dir, app_dir, common, app_req, requirement_files)
    changed = changed or common_changed or venv_changed
    targets = {}
    for target in sorted(set(opts.target)):
        dependencies, deps_changed = target_dependencies(
            deps_dir, target, app_dir, common, app_req, requirement_files, opts.extra)
        tarball, deps, target_changed = build_target(
            release_dir, target, app_wheel, dependencies, app_req, requirement_files, opts.extra)
        targets[target] = {"tarball": str(tarball), "deps": deps}
        changed = changed or deps_changed or target_changed
    print(json.dumps({
        "release_id": release_id,
        "content": content,
        "changed": changed,
        "build_dir": str(release_dir),
        "app_requirement": app_req,
        "controller_python": str(controller_venv / "bin" / "python"),
        "targets": targets,
    }))


if __name__ == "__main__":
    main()
