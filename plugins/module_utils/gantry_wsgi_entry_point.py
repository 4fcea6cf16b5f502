# Copyright: Gantry contributors
# MIT License (see the repository)
"""The app's entry point (gantry_wsgi_app), read the way Gunicorn 26 reads it.

Gunicorn's ``gunicorn.util.import_app`` takes ``MODULE[:EXPRESSION]``: no colon means
the module's ``application``; the expression, parsed as Python, must be a bare name or a
call of a bare name whose arguments are all literals (``ast.literal_eval``). Anything
else fails when the instance starts. Reading it here the same way lets the deploy refuse
a bad entry point on the controller, before any host changes, and lets the controller
load the app exactly as Gunicorn will.

One stricter rule: the module must be a dotted Python name. Gunicorn hands any string to
importlib, which can only find another as a file of that name on sys.path, never as a
package pip installed, which is how the app reaches its release.

Python 3 standard library only, without Ansible: loaded by file path by the Jinja test
and filter (plugins/test, plugins/filter) on the controller, and by
roles/s3_static/files/flask_static_folders.py under the built app's own Python.
"""

from __future__ import annotations

import ast
import importlib
from typing import NamedTuple

# What Gunicorn looks for in a module given without a colon.
DEFAULT_NAME = "application"

FORMS = (
    "Gunicorn accepts module (it serves the module's application), module:name, "
    "module:factory() and module:factory(arguments) with literal arguments (strings, "
    "numbers, True/False/None, tuples, lists, dicts), such as myapp.wsgi:app or "
    "myapp:create_app('production', debug=False)"
)


class EntryPointError(ValueError):
    """The entry point is not one Gunicorn can load; the message says why."""


class EntryPoint(NamedTuple):
    module: str
    name: str
    # None for a name, a tuple and a dict for a call (empty when it has no arguments).
    args: tuple | None = None
    kwargs: dict | None = None

    @property
    def is_call(self):
        return self.args is not None


def parse(value):
    """value as an EntryPoint, or EntryPointError saying why Gunicorn would refuse it."""
    if not isinstance(value, str):
        raise EntryPointError("it must be a string, not %s" % type(value).__name__)
    module, colon, expression = value.partition(":")
    if not colon:
        expression = DEFAULT_NAME
    if not all(part.isidentifier() for part in module.split(".")):
        raise EntryPointError(
            "the module, %r, must be a dotted Python name such as myapp.wsgi" % module
        )
    try:
        # ValueError: a NUL byte, which Python 3.11 reports outside SyntaxError.
        node = ast.parse(expression, mode="eval").body
    except (SyntaxError, ValueError):
        raise EntryPointError("%r is not a name or a call" % expression) from None
    if isinstance(node, ast.Name):
        return EntryPoint(module, node.id)
    if not isinstance(node, ast.Call):
        raise EntryPointError(
            "%r is not a name or a call: Gunicorn reads no attribute paths or other "
            "expressions; give the object a name of its own in the module" % expression
        )
    if not isinstance(node.func, ast.Name):
        raise EntryPointError(
            "%r calls %r: the factory must be a plain name in the module"
            % (expression, ast.unparse(node.func))
        )
    # Gunicorn would build {None: ...} and the call would fail with a TypeError.
    if any(keyword.arg is None for keyword in node.keywords):
        raise EntryPointError("%r unpacks keyword arguments (**): give them one by one"
                              % expression)
    try:
        args = tuple(ast.literal_eval(arg) for arg in node.args)
        kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
    # ValueError: not a literal (a variable, a call, *unpacking); TypeError: an unhashable
    # key in a dict or set literal; the others: a literal too deep or too big to build.
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise EntryPointError(
            "%r passes something other than literals to %s()" % (expression, node.func.id)
        ) from None
    return EntryPoint(module, node.func.id, args, kwargs)


def problem(value):
    """Why Gunicorn would refuse value, followed by the accepted forms; "" when it is fine."""
    try:
        parse(value)
    except EntryPointError as exc:
        return "%s. %s" % (exc, FORMS)
    return ""


def load(value):
    """The WSGI callable value names, obtained as Gunicorn obtains it (import, look up, call)."""
    entry = parse(value)
    module = importlib.import_module(entry.module)
    try:
        app = getattr(module, entry.name)
    except AttributeError:
        raise EntryPointError(
            "module %s has no attribute %r" % (entry.module, entry.name)) from None
    if entry.is_call:
        app = app(*entry.args, **entry.kwargs)
    if app is None:
        raise EntryPointError("%s gave None, not an application" % value)
    if not callable(app):
        raise EntryPointError("%s is not callable, so not a WSGI application" % value)
    return app
