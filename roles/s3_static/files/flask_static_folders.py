"""Print the static folders of a Flask app as JSON, for s3_static_sync.

Run it with the Python of the BUILT app (the release venv on the controller), so the
folders are the ones the release will serve:

    venv/bin/python flask_static_folders.py gantry_demo.wsgi:app

It picks the folders Flask-S3's create_all() uploads: the app's static folder and the
static folder of every registered blueprint. The URL path of each comes from the app's
URL map (the rule of the ``static`` / ``<blueprint>.static`` endpoint), which is what
Flask-S3's url_for() builds from; where Flask-S3's own upload layout (blueprint
url_prefix + static_url_path) would differ, a warning says so.

The app is loaded as Gunicorn loads it, in every form Gunicorn accepts (``module``,
``module:name``, ``module:factory(...)`` with literal arguments), by the code the deploy
validates gantry_wsgi_app with: plugins/module_utils/gantry_wsgi_entry_point.py, in this
repository, found from this file's own place in it.

Output: {"folders": [{"path", "url_path", "endpoint"}], "warnings": [...]}
"""

import argparse
import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path

SUFFIX = "/<path:filename>"

ENTRY_POINTS = (Path(__file__).resolve().parents[3]
                / "plugins" / "module_utils" / "gantry_wsgi_entry_point.py")


def entry_points():
    """The shared reader of entry points, loaded by path: this Python has no Ansible."""
    spec = importlib.util.spec_from_file_location("gantry_wsgi_entry_point", ENTRY_POINTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_app(spec):
    """The app spec names, imported, looked up and (a factory) called as Gunicorn does."""
    return entry_points().load(spec)


def url_path_of(app, endpoint, warnings):
    rules = list(app.url_map.iter_rules(endpoint))
    if not rules:
        return None
    rule = rules[0]
    if len(rules) > 1:
        warnings.append("%s has %d URL rules; using %s" % (endpoint, len(rules), rule.rule))
    if rule.subdomain or rule.host:
        warnings.append("%s is served on another host or subdomain; keys ignore it" % endpoint)
    if not rule.rule.endswith(SUFFIX):
        warnings.append("%s has an unexpected rule %s" % (endpoint, rule.rule))
        return None
    return rule.rule[: -len(SUFFIX)]


def static_folders(app):
    warnings = []
    entries = []
    if app.static_folder:
        entries.append(("static", app.static_folder, app.static_url_path or ""))
    for name, bp in app.blueprints.items():
        if bp.static_folder:
            flask_s3 = "%s%s" % (bp.url_prefix or "", bp.static_url_path or "")
            entries.append(("%s.static" % name, bp.static_folder, flask_s3))
    folders = []
    for endpoint, folder, flask_s3_path in entries:
        url_path = url_path_of(app, endpoint, warnings)
        if url_path is None:
            warnings.append("%s has no static route; %s skipped" % (endpoint, folder))
            continue
        if url_path != flask_s3_path:
            warnings.append(
                "%s is served at %s but Flask-S3's create_all would upload it to %s; "
                "using %s, where url_for points" % (endpoint, url_path, flask_s3_path, url_path)
            )
        if not os.path.isdir(folder):
            warnings.append("%s: %s does not exist; skipped" % (endpoint, folder))
            continue
        folders.append(
            {"path": os.path.abspath(folder), "url_path": url_path, "endpoint": endpoint}
        )
    return {"folders": folders, "warnings": warnings}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "app", help="entry point, such as gantry_demo.wsgi:app or shop:create_app('production')")
    args = parser.parse_args(argv)
    # Whatever the app prints while importing must not corrupt the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        app = load_app(args.app)
        result = static_folders(app)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    for warning in result["warnings"]:
        print("warning: %s" % warning, file=sys.stderr)


if __name__ == "__main__":
    main()
