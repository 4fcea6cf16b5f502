#!/usr/bin/env bash
# ansible-test sanity on the collection as it ships: the tarball `ansible-galaxy collection
# build` makes, installed into a scratch tree (ansible-test needs the real path
# .../ansible_collections/gantry/deploy, and checks what users get, not this repository's
# tests and tooling). Accepted findings: tests/sanity/ignore-<core>.txt, each with its reason.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

ansible-galaxy collection build --output-path "$scratch" "$root" >/dev/null
# --force: this checkout is itself an installed gantry.deploy (.collections), which would
# make the install a no-op.
ansible-galaxy collection install --force -p "$scratch/tree" "$scratch"/gantry-deploy-*.tar.gz >/dev/null
installed="$scratch/tree/ansible_collections/gantry/deploy"
mkdir -p "$installed/tests/sanity"
cp "$root"/tests/sanity/ignore-*.txt "$installed/tests/sanity/"

# ansible-test bootstraps pip in each sanity virtualenv with a get-pip.py it downloads
# from a host this machine cannot reach, unless the script is in its cache already.
pip_version=$(python3 -c 'import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=None))["pip"])')
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    cp "$root/tools/ansible-test-get-pip.py" "$cache"
fi

python_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$installed"
ansible-test sanity --python "$python_version" --color no
