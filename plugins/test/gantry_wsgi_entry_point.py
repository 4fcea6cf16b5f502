# Copyright: Gantry contributors
# MIT License (see the repository)
"""Jinja test ``gantry_wsgi_entry_point``: true when Gunicorn can read the value as an app.

    gantry_wsgi_app is gantry_wsgi_entry_point

The rules are plugins/module_utils/gantry_wsgi_entry_point.py's, which the controller's
other readers of the entry point share. That file is plain Python, not an Ansible
module_utils Ansible would import for us on the controller: it is loaded by its path.
"""

import importlib.util
import sys
from pathlib import Path

_SHARED = Path(__file__).resolve().parents[1] / "module_utils" / "gantry_wsgi_entry_point.py"
_NAME = "_gantry_wsgi_entry_point"


def _entry_points():
    if _NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_NAME, _SHARED)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[_NAME] = module
    return sys.modules[_NAME]


def gantry_wsgi_entry_point(value):
    return _entry_points().problem(value) == ""


class TestModule:
    def tests(self):
        return {"gantry_wsgi_entry_point": gantry_wsgi_entry_point}
