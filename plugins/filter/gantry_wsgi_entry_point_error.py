# Copyright: Gantry contributors
# MIT License (see the repository)
"""Jinja filter ``gantry_wsgi_entry_point_error``: why Gunicorn cannot load the value as an
app, followed by the forms it accepts; "" when it can.

    allowed: "{{ gantry_wsgi_app | gantry_wsgi_entry_point_error }}"

The rules are plugins/module_utils/gantry_wsgi_entry_point.py's, as for the test
``gantry_wsgi_entry_point`` (plugins/test), which this message goes with; loaded by path
for the same reason.
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


def gantry_wsgi_entry_point_error(value):
    return _entry_points().problem(value)


class FilterModule:
    def filters(self):
        return {"gantry_wsgi_entry_point_error": gantry_wsgi_entry_point_error}
