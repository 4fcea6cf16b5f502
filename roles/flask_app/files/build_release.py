"""Build a release of a Flask app on the controller, once, for every target host kind.

Hosts get no index access: everything they install comes from a wheelhouse built here.
Compiled wheels are tied to a Python version, glibc and architecture, so the wheelhouse is
made per target (``cp313:2.41:x86_64``); pure wheels, including the app's own and any
built from an sdist, are built once and shared.

Prints one JSON object. Every step leaves a finished artefact behind an atomic rename,
so an interrupted build is simply redone and a finished one is never rebuilt.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
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


def build_common(release_dir, source, requirement_files, extra_requirements):
    """Wheels for the controller's own Python: the app, and every pure dependency."""
    common = release_dir / "common"
    if (common / ".complete").exists():
        return common, False
    shutil.rmtree(common, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(dir=release_dir, prefix=".common-"))
    # setuptools builds in the tree it is given: build a copy, never the user's checkout.
    tree = Path(tempfile.mkdtemp(dir=release_dir, prefix=".source-")) / "src"
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns(*SKIPPED_DIRS, "*.egg-info"))
    run(pip("wheel", "--wheel-dir", str(scratch), str(tree),
            *requirement_args(requirement_files, extra_requirements)))
    shutil.rmtree(tree.parent)
    (scratch / ".complete").touch()
    scratch.rename(common)
    return common, True


def app_wheel(common, source):
    built = json.loads(subprocess.run(
        [sys.executable, "-c",
         "import json,sys,tomllib;"
         "p=tomllib.load(open(sys.argv[1],'rb'))['project'];"
         "print(json.dumps([p['name'],p['version']]))",
         str(source / "pyproject.toml")],
        capture_output=True, text=True, check=True).stdout)
    name, version = built
    stem = name.replace("-", "_").replace(".", "_").lower()
    for wheel in common.glob("*.whl"):
        if wheel.name.lower().startswith(f"{stem}-{version}-"):
            return wheel, f"{name}=={version}"
    sys.exit(f"no wheel for {name} {version} was built from {source}")


def platform_tags(glibc, arch):
    major, minor = (int(part) for part in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    return tags + [f"manylinux2014_{arch}", f"linux_{arch}"]


def build_target(release_dir, target, common, app_req, requirement_files, extra_requirements,
                 app_wheel_name):
    """A tarball holding wheels/ and install.txt for one kind of host."""
    tarball = release_dir / f"{target.replace(':', '-')}.tar.gz"
    deps_file = tarball.with_suffix(".deps")
    if tarball.exists() and deps_file.exists():
        return tarball, deps_file.read_text().strip(), False
    python, glibc, arch = target.split(":")
    pyver = python.removeprefix("cp")
    scratch = Path(tempfile.mkdtemp(dir=release_dir, prefix=".target-"))
    wheels = scratch / "wheels"
    args = ["download", "--dest", str(wheels), "--only-binary=:all:", "--find-links", str(common),
            "--implementation", "cp", "--python-version", f"{pyver[0]}.{pyver[1:]}",
            "--abi", python, "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(glibc, arch):
        args += ["--platform", tag]
    run(pip(*args, app_req, *requirement_args(requirement_files, extra_requirements)))
    lines = [app_req, *extra_requirements]
    for req in requirement_files:
        lines += [line for line in Path(req).read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith(("#", "-"))]
    (scratch / "install.txt").write_text("\n".join(lines) + "\n")
    # A release whose dependencies match the running one can be hot-reloaded; any other
    # needs a restart, so the deploy compares this digest.
    dep_names = sorted(w.name for w in wheels.glob("*.whl") if w.name != app_wheel_name)
    deps = hashlib.sha256("\n".join(dep_names).encode()).hexdigest()[:16]
    partial = scratch.with_suffix(".tar.gz")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(wheels, arcname="wheels")
        tar.add(scratch / "install.txt", arcname="install.txt")
    partial.rename(tarball)
    deps_file.write_text(deps + "\n")
    shutil.rmtree(scratch)
    return tarball, deps, True


def build_controller_venv(release_dir, common, app_req, requirement_files, extra_requirements):
    """The app installed on the controller, for steps that must import it (static folders)."""
    target = release_dir / "venv"
    if (target / ".complete").exists():
        return target, False
    shutil.rmtree(target, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(target)
    run([str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install",
         "--quiet", "--no-index", "--find-links", str(common), app_req,
         *requirement_args(requirement_files, [])])
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

    common, changed = build_common(release_dir, source, requirement_files, opts.extra)
    wheel, app_req = app_wheel(common, source)
    controller_venv, venv_changed = build_controller_venv(
        release_dir, common, app_req, requirement_files, opts.extra)
    targets = {}
    for target in sorted(set(opts.target)):
        tarball, deps, target_changed = build_target(
            release_dir, target, common, app_req, requirement_files, opts.extra, wheel.name)
        targets[target] = {"tarball": str(tarball), "deps": deps}
        changed = changed or target_changed
    print(json.dumps({
        "release_id": release_id,
        "content": content,
        "changed": changed or venv_changed,
        "build_dir": str(release_dir),
        "app_requirement": app_req,
        "controller_python": str(controller_venv / "bin" / "python"),
        "targets": targets,
    }))


if __name__ == "__main__":
    main()
