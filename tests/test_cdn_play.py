"""playbooks/cdn.yml on two hosts: pages are purged when a host serves another release
than the one its pages were last purged for, so the retry of a run whose purge failed
after the switch still purges them, and a run that changes nothing purges nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

from cloudflare_standin import REPO, TOKEN

BIN = Path(sys.executable).parent
PAGES = ["https://www.example.com/", "https://www.example.com/about"]


def serve(root, release):
    """Point the host's current link at ``release``, as a switch does."""
    (root / "releases" / release).mkdir(parents=True, exist_ok=True)
    link = root / "current"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(root / "releases" / release)


def run_cdn(tmp_path, cf):
    (tmp_path / "hosts.ini").write_text(
        "[app_servers]\n"
        + "".join(f"{h} flask_release_root={tmp_path / h}\n" for h in ("a", "b"))
        + "[app_servers:vars]\nansible_connection=local\n")
    extra = {
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,
        "gantry_app_name": "shop",
        "cloudflare_cdn_enabled": True,
        "cloudflare_cdn_zone_name": "example.com",
        "cloudflare_cdn_api_token": TOKEN,
        "cloudflare_cdn_base_url": cf.base_url,
        "cloudflare_cdn_purge_paths": ["/", "/about"],
        "cloudflare_cdn_site_url": "https://www.example.com",
        "cloudflare_cdn_retries": 0,
    }
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.pop("CLOUDFLARE_API_TOKEN", None)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
         str(REPO / "playbooks" / "cdn.yml"), "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def purged_pages(cf):
    return [p["files"] for p in cf.purges]


def test_pages_follow_the_release_each_host_serves(tmp_path, cf):
    for host in ("a", "b"):
        serve(tmp_path / host, "r1")
    rc, out = run_cdn(tmp_path, cf)
    assert rc == 0, out
    assert purged_pages(cf) == [PAGES]
    assert (tmp_path / "a" / "cdn-purged").read_text() == "r1\n"

    # Nothing switched since: nothing to purge.
    rc, out = run_cdn(tmp_path, cf)
    assert rc == 0, out
    assert purged_pages(cf) == [PAGES]

    # One host switched, and the purge fails: the run fails and remembers nothing.
    serve(tmp_path / "b", "r2")
    cf.inject(400, times=1, method="POST", path="purge_cache")
    rc, out = run_cdn(tmp_path, cf)
    assert rc != 0 and "The CDN step failed" in " ".join(out.split()), out
    assert (tmp_path / "b" / "cdn-purged").read_text() == "r1\n"

    # The retry switches nothing more, and still purges the pages.
    rc, out = run_cdn(tmp_path, cf)
    assert rc == 0, out
    assert purged_pages(cf) == [PAGES, PAGES]
    assert (tmp_path / "b" / "cdn-purged").read_text() == "r2\n"
