"""Run Gantry's modules from the tests the way Ansible runs them on a host, with
plugins/module_utils importable as ansible_collections.gantry.deploy.plugins.module_utils
(AnsiballZ ships those files with the module; here tests/conftest.py puts this checkout,
linked as the collection, on the import path)."""

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "plugins" / "modules"
COLLECTIONS = str(ROOT / ".collections")

# A process of its own imports nothing from this one: it adds the path itself, then runs
# the module file as __main__.
RUNNER = (
    "import sys, runpy;"
    "sys.path.insert(0, sys.argv.pop(1));"
    "runpy.run_path(sys.argv.pop(1), run_name='__main__')"
)


def load_module(name):
    """plugins/modules/<name>.py as a new module object, which a test may patch alone."""
    spec = importlib.util.spec_from_file_location(f"gantry_test_{name}", MODULES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_module(name, args, check_mode=False, diff=True):
    """Run the module's main() on args; return the JSON it printed, failed or not."""
    from ansible.module_utils.testing import patch_module_args

    module = load_module(name)
    out = io.StringIO()
    args = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args(args), contextlib.redirect_stdout(out):
        with contextlib.suppress(SystemExit):
            module.main()
    return json.loads(out.getvalue())


def module_command(name, args_file):
    """The command running the module in a process of its own on an arguments file."""
    return [sys.executable, "-c", RUNNER, COLLECTIONS, str(MODULES / f"{name}.py"),
            str(args_file)]
