"""The s3_static role through ansible-playbook: discovery with the app's Python, one
upload from the controller, facts on every host of the play."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import s3_helpers  # noqa: E402
from s3_helpers import KEY_ID, PYTHON, REPO, SECRET, clean_env, list_keys, write_tree  # noqa: E402

moto = s3_helpers.moto
s3 = s3_helpers.s3
bucket = s3_helpers.bucket

PLAYBOOK = """
- name: Assets
  hosts: app
  gather_facts: false
  tasks:
    - name: Run the role
      ansible.builtin.include_role:
        name: gantry.deploy.s3_static
    - name: Show the facts
      ansible.builtin.debug:
        msg:
          env: "{{ s3_static_env }}"
          urls: "{{ s3_static_changed_urls }}"
          counts: "{{ s3_static_counts }}"
          version: "{{ s3_static_version }}"
"""

# Every host, localhost included, points at a Python without boto3: the upload only
# works if the role runs the module with s3_static_controller_python.
INVENTORY = """
app:
  hosts:
    web1:
    web2:
  vars:
    ansible_connection: local
    ansible_python_interpreter: /usr/bin/python3
local:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: /usr/bin/python3
"""


def play(tmp_path, extra_vars, check=False):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    (tmp_path / "vars.json").write_text(json.dumps(extra_vars))
    cmd = [
        os.path.join(os.path.dirname(PYTHON), "ansible-playbook"),
        "-i",
        str(tmp_path / "hosts.yml"),
        str(tmp_path / "play.yml"),
        "-e",
        "@" + str(tmp_path / "vars.json"),
    ]
    if check:
        cmd += ["--check", "--diff"]
    env = clean_env(
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-tmp"),
    )
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    by_name = {}
    for task in tasks:
        by_name.setdefault(task["task"]["name"].removeprefix("gantry.deploy.s3_static : "),
                           task["hosts"])
    return by_name


def tiny_app(tmp_path):
    write_tree(
        tmp_path / "apps" / "roleshop",
        {
            "__init__.py": (
                "import os\n"
                "from flask import Flask, Blueprint\n"
                "assert os.environ['NEEDED_AT_IMPORT'] == 'yes'\n"
                "app = Flask(__name__)\n"
                "bp = Blueprint('cat', __name__, static_folder='static')\n"
                "app.register_blueprint(bp, url_prefix='/cat')\n"
            ),
            "static/css/site.css": "body{}\n",
            "static/js/app.0123abcd.js": "go()\n",
        },
    )


def role_vars(moto, bucket, tmp_path, **kw):
    out = {
        "s3_static_enabled": True,
        "s3_static_bucket": bucket,
        "s3_static_prefix": "site",
        "s3_static_cdn_domain": "cdn.example.com",
        "s3_static_endpoint_url": moto.endpoint,
        "s3_static_region": "us-east-1",
        "s3_static_aws_access_key_id": KEY_ID,
        "s3_static_aws_secret_access_key": SECRET,
        "s3_static_app_python": PYTHON,
        "s3_static_app_import": "roleshop:app",
        "s3_static_app_environment": {
            "PYTHONPATH": str(tmp_path / "apps"),
            "NEEDED_AT_IMPORT": "yes",
        },
        "s3_static_controller_python": PYTHON,
        "s3_static_release": "rel-1",
        # In place, as Flask-S3's create_all: the layout whose changed files are purged.
        "s3_static_versioned": False,
    }
    out.update(kw)
    return out


def test_role_uploads_once_and_sets_facts_on_every_host(moto, s3, bucket, tmp_path):
    tiny_app(tmp_path)
    tasks = play(tmp_path, role_vars(moto, bucket, tmp_path))
    sync = tasks["Sync the folders to the bucket"]
    assert list(sync) == ["web1"]  # run_once
    assert sync["web1"]["uploaded"] == 4
    assert sync["web1"]["invocation"]["module_args"]["aws_secret_access_key"] != SECRET
    keys = set(list_keys(s3, bucket))
    # The app and the blueprint share a folder name but not a URL path.
    assert {
        "site/static/css/site.css",
        "site/cat/static/css/site.css",
        "site/static/js/app.0123abcd.js",
        "site/cat/static/js/app.0123abcd.js",
    } <= keys
    facts = tasks["Show the facts"]
    for host in ("web1", "web2"):
        env = facts[host]["msg"]["env"]
        assert env["FLASKS3_BUCKET_NAME"] == bucket
        assert env["FLASKS3_PREFIX"] == "site"
        assert env["FLASKS3_CDN_DOMAIN"] == "cdn.example.com"
        assert facts[host]["msg"]["urls"] == []
        # What the deploy summary reports.
        counts = facts[host]["msg"]["counts"]
        assert counts["uploaded"] == 4 and counts["deleted"] == 0
        assert counts["files"] == 4 and counts["bytes"] > 0 and counts["uploaded_bytes"] > 0

    # A changed file shows up for the CDN purge; check mode leaves the bucket alone.
    site_css = tmp_path / "apps" / "roleshop" / "static" / "css" / "site.css"
    site_css.write_text("body{margin:0}\n")
    before = list_keys(s3, bucket)
    tasks = play(tmp_path, role_vars(moto, bucket, tmp_path, s3_static_release="rel-2"), True)
    urls = tasks["Show the facts"]["web2"]["msg"]["urls"]
    assert urls == [
        "https://cdn.example.com/site/cat/static/css/site.css",
        "https://cdn.example.com/site/static/css/site.css",
    ]
    assert {k: v["ETag"] for k, v in list_keys(s3, bucket).items()} == {
        k: v["ETag"] for k, v in before.items()
    }


def test_default_layout_is_versioned_under_the_app_name(moto, s3, bucket, tmp_path):
    tiny_app(tmp_path)
    extra = role_vars(moto, bucket, tmp_path, gantry_app_name="roleshop")
    for name in ("s3_static_prefix", "s3_static_versioned"):
        del extra[name]
    facts = play(tmp_path, extra)["Show the facts"]["web2"]["msg"]
    version = facts["version"]
    assert version.startswith("v")
    assert facts["env"]["FLASKS3_PREFIX"] == "roleshop/" + version
    assert facts["counts"]["version"] == version and facts["urls"] == []
    assert "roleshop/%s/cat/static/css/site.css" % version in list_keys(s3, bucket)
    # The static tree did not change: another release reuses the version.
    again = play(tmp_path, dict(extra, s3_static_release="rel-2"))["Show the facts"]["web1"]
    assert again["msg"]["version"] == version and again["msg"]["counts"]["uploaded"] == 0


def test_disabled_role_touches_nothing(moto, s3, bucket, tmp_path):
    tasks = play(tmp_path, {"s3_static_enabled": False, "s3_static_bucket": bucket})
    assert tasks["Show the facts"]["web1"]["msg"] == {
        "env": {},
        "urls": [],
        "counts": {},
        "version": "",
    }
    assert list_keys(s3, bucket) == {}
