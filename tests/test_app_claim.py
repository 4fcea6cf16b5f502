"""app_claim refuses what the host or another Gantry app owns, and claims only when all is free.

Runs the module's checks against this machine, read-only, with markers in a scratch
registry: root and /etc exist on every Debian machine, and the test listens on a port of
its own to be the "other process".
"""

import importlib.util
import json
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("app_claim", ROOT / "plugins/modules/app_claim.py")
app_claim = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app_claim)
NOT_OURS = "exists on this host and was not created by Gantry for app gantry-claim-test"


def params(name="gantry-claim-test", **over):
    base = dict(
        name=name,
        user=name,
        group=name,
        units=[f"{name}.service", f"{name}.socket"],
        paths=[f"/etc/{name}", f"/srv/{name}"],
        port=0,
        adopt=False,
    )
    return base | over


def write_marker(registry, **data):
    registry.mkdir(exist_ok=True)
    (registry / f"{data['name']}.json").write_text(json.dumps(data))


def conflicts(registry, **over):
    return app_claim.find_conflicts(params(**over), app_claim.read_markers(str(registry)))


def test_a_free_name_and_port_have_no_conflict(tmp_path):
    assert conflicts(tmp_path / "apps") == []


@pytest.mark.parametrize("kind", ["user", "group"])
def test_an_account_of_the_host_is_refused(tmp_path, kind):
    found = conflicts(tmp_path / "apps", **{kind: "root"})
    assert found == [f"{kind} root {NOT_OURS}"]


def test_a_directory_of_the_host_is_refused(tmp_path):
    found = conflicts(tmp_path / "apps", paths=["/etc"])
    assert found == [f"path /etc {NOT_OURS}"]


def test_what_the_marker_lists_belongs_to_the_app(tmp_path):
    registry = tmp_path / "apps"
    write_marker(
        registry,
        name="gantry-claim-test",
        user="root",
        group="root",
        units=[],
        paths=["/etc"],
        port=0,
    )
    assert conflicts(registry, user="root", group="root", paths=["/etc"]) == []


def test_another_gantry_apps_names_and_port_are_refused(tmp_path):
    registry = tmp_path / "apps"
    write_marker(
        registry,
        name="shop",
        user="shop",
        group="shop",
        units=["shop.service"],
        paths=["/srv/shop"],
        port=8123,
    )
    found = conflicts(registry, user="shop", units=["shop.service"], paths=["/srv/shop"], port=8123)
    assert found == [
        "user shop belongs to the Gantry app shop",
        "unit shop.service belongs to the Gantry app shop",
        "path /srv/shop belongs to the Gantry app shop",
        "port 8123 is used by the Gantry app shop",
    ]


def test_a_port_another_process_listens_on_is_refused(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        found = conflicts(tmp_path / "apps", port=port)
        assert len(found) == 1 and found[0].startswith(f"port {port} is already listened on by ")
        # The app's own listener (a redeploy on the same port) is not a conflict.
        write_marker(
            tmp_path / "apps",
            name="gantry-claim-test",
            user="x",
            group="x",
            units=[],
            paths=[],
            port=port,
        )
        assert conflicts(tmp_path / "apps", port=port) == []


def test_unreadable_markers_are_ignored(tmp_path):
    registry = tmp_path / "apps"
    registry.mkdir()
    (registry / "broken.json").write_text("{not json")
    assert conflicts(registry) == []


def test_adopting_claims_what_exists_but_never_another_apps(tmp_path):
    registry = tmp_path / "apps"
    write_marker(registry, name="shop", user="shop", group="shop", units=[], paths=[], port=8123)
    assert conflicts(registry, user="root", paths=["/etc"], adopt=True) == []
    found = conflicts(registry, user="shop", port=8123, adopt=True)
    assert found == [
        "user shop belongs to the Gantry app shop",
        "port 8123 is used by the Gantry app shop",
    ]
