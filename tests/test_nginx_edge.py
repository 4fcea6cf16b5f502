"""Role nginx_edge on the controller: its inputs, its templates, its Cloudflare module.

Four kinds of check, none needing a host:
- bad inputs are refused by the role's validate entry point, each with its own line
  naming the input and the value (never the key's);
- the templates render the upstream (links to the sockets), retries, realip, origin
  lock, maintenance and static locations as the role's comments promise; with no
  sockets given, the links keep the host's sockets (or a placeholder);
- the upstream entry point, run on this machine with its files in a scratch directory
  and nginx taken as not installed (the first deploy's case), writes the upstream once
  and then only moves its links, reports the switch and the log offset, writes nothing
  in check mode and refuses bad sockets;
- cloudflare_ips reads Cloudflare's /ips through the SDK from a local
  stand-in (tests/cloudflare_standin.py has no /ips, so this file serves its own), and
  falls back to the pinned list, with a warning, when the answer is missing or unusable.
The role on real Debian hosts (nginx -t, reloads, TLS, 413, maintenance) is proven in a
container; see the role's defaults and the report that came with it.
"""

import base64
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from gantry_plays import role_play, run_play

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "nginx_edge"
BIN = Path(sys.executable).parent
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nsuper-secret-key-material\n-----END PRIVATE KEY-----\n"
GOOD = {"gantry_app_name": "shop", "gantry_environment": "production"}
LOCAL = {"gantry_environment": "local"}


def validate(tmp_path, **extra):
    play = [{
        "name": "Validate",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "gantry.deploy.nginx_edge",
                                                    "tasks_from": "validate"}}],
    }]
    return run_play(tmp_path, play, GOOD | extra)


# -- inputs --------------------------------------------------------------------------

def test_production_with_a_certificate_passes(tmp_path):
    rc, out = validate(tmp_path, nginx_edge_tls_certificate=CERT, nginx_edge_tls_key=KEY)
    assert rc == 0, out
    assert "super-secret" not in out


@pytest.mark.parametrize("extra", [
    {"gantry_environment": "local"},
    {"nginx_edge_tls_self_signed": True},
    {"nginx_edge_tls_enabled": False},
    {"nginx_edge_client_max_body_size": "0", "gantry_environment": "local"},
    {"nginx_edge_client_max_body_size": "2G", "nginx_edge_cloudflare": True, **LOCAL,
     "nginx_edge_cloudflare_origin_lock": True, "nginx_edge_allow_extra": ["10.0.0.0/8", "::1"]},
    {"nginx_edge_static_locations": [{"url_path": "/static/", "path": "/srv/shop/static/"}],
     **LOCAL},
    {"nginx_edge_http_port": "8080", "nginx_edge_https_port": "8443",
     "nginx_edge_tls_enabled": "false", "nginx_edge_hsts": "false"},
], ids=["local-self-signed-unasked", "self-signed", "tls-off", "body-size-unlimited",
        "cloudflare-lock", "static", "strings-from-the-command-line"])
def test_good_inputs_pass(tmp_path, extra):
    rc, out = validate(tmp_path, **extra)
    assert rc == 0, out


def test_each_bad_input_gets_its_own_line(tmp_path):
    rc, out = validate(
        tmp_path,
        nginx_edge_app_name="Shop!",
        nginx_edge_upstream_sockets=["run/app.sock", "/run/" + "x" * 120 + ".sock"],
        nginx_edge_http_port=70000,
        nginx_edge_https_port=0,
        nginx_edge_server_names=["shop.example.com", "bad name"],
        nginx_edge_client_max_body_size="100MB",
        nginx_edge_client_body_buffer_size="1.5m",
        nginx_edge_proxy_read_timeout=30,
        nginx_edge_proxy_next_upstream_timeout=30,
        nginx_edge_proxy_connect_timeout=90,
        nginx_edge_cloudflare_origin_lock=True,
        nginx_edge_cloudflare_fallback_ranges=["173.245.48.0/20", "not-a-range"],
        nginx_edge_allow_extra=["300.1.1.1"],
        nginx_edge_maintenance_allow=["10.0.0.0/33"],
        nginx_edge_maintenance_retry_after=0,
        nginx_edge_maintenance_flag="/var/lib/gantry/",
        nginx_edge_cloudflare_base_url="ftp://cf",
        nginx_edge_static_locations=[{"url_path": "/static", "path": "/srv/shop/static/"},
                                     {"url_path": "/", "path": "/srv/"}],
    )
    assert rc != 0, out
    for line in [
        '- nginx_edge_app_name is "Shop!"',
        "- nginx_edge_upstream_sockets is",
        '"run/app.sock"',
        "- nginx_edge_http_port is 70000",
        "- nginx_edge_https_port is 0",
        '- nginx_edge_server_names is ["shop.example.com", "bad name"]',
        '- nginx_edge_client_max_body_size is "100MB"',
        '- nginx_edge_client_body_buffer_size is "1.5m"',
        "- nginx_edge_proxy_next_upstream_timeout is 30",
        "- nginx_edge_proxy_connect_timeout is 90",
        "- nginx_edge_cloudflare_origin_lock is true",
        '"not-a-range"',
        '- nginx_edge_allow_extra is ["300.1.1.1"]',
        '- nginx_edge_maintenance_allow is ["10.0.0.0/33"]',
        "- nginx_edge_maintenance_retry_after is 0",
        '- nginx_edge_maintenance_flag is "/var/lib/gantry/"',
        '- nginx_edge_cloudflare_base_url is "ftp://cf"',
        "- nginx_edge_static_locations is",
        # TLS in production without a certificate.
        "- nginx_edge_tls_enabled is true",
    ]:
        assert line in out, line + "\n" + out
    # Inputs that were fine get no line.
    assert "nginx_edge_upstream_keepalive is" not in out


def test_same_port_twice_is_refused(tmp_path):
    rc, out = validate(tmp_path, gantry_environment="local",
                       nginx_edge_http_port=8443, nginx_edge_https_port=8443)
    assert rc != 0
    assert "- nginx_edge_https_port is 8443: a port other than nginx_edge_http_port" in out


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"nginx_edge_tls_certificate": CERT}, "- nginx_edge_tls_certificate is \"(set)\""),
    ({"nginx_edge_tls_key": KEY}, "- nginx_edge_tls_certificate is \"(empty)\""),
    ({"nginx_edge_tls_certificate": "/etc/ssl/cert.pem", "nginx_edge_tls_key": KEY},
     "PEM text holding -----BEGIN CERTIFICATE-----"),
    ({"nginx_edge_tls_certificate": CERT, "nginx_edge_tls_key": "super-secret-not-pem"},
     "- nginx_edge_tls_key is \"(set)\": PEM text"),
    ({"nginx_edge_tls_certificate": CERT, "nginx_edge_tls_key": KEY,
      "nginx_edge_tls_self_signed": True}, "- nginx_edge_tls_self_signed is true"),
], ids=["certificate-without-key", "key-without-certificate", "certificate-path",
        "key-not-pem", "both-certificate-and-self-signed"])
def test_certificate_and_key_go_together_and_the_key_is_never_shown(tmp_path, extra, fragment):
    rc, out = validate(tmp_path, **extra)
    assert rc != 0, out
    assert fragment in out, out
    assert "super-secret" not in out, out


def test_tls_without_a_certificate_is_refused_outside_local(tmp_path):
    rc, out = validate(tmp_path, gantry_environment="staging")
    assert rc != 0
    assert "- nginx_edge_tls_enabled is true: TLS needs nginx_edge_tls_certificate" in out
    assert '(gantry_environment is "staging"' in out


@pytest.mark.parametrize(("name", "value"), [
    ("nginx_edge_cloudflare", "maybe"),
    ("nginx_edge_tls_enabled", "sometimes"),
    ("nginx_edge_hardening", "2"),
])
def test_unknown_booleans_are_refused(tmp_path, name, value):
    rc, out = validate(tmp_path, gantry_environment="local", **{name: value})
    assert rc != 0
    assert name in out and value in out and "bool" in out, out


def test_a_port_that_is_not_a_number_is_refused(tmp_path):
    rc, out = validate(tmp_path, gantry_environment="local", nginx_edge_https_port="https")
    assert rc != 0
    assert "nginx_edge_https_port" in out and "int" in out, out


# -- templates -----------------------------------------------------------------------

def render(tmp_path, **extra):
    """Render the role's templates with its defaults and vars, on the controller."""
    out = tmp_path / "out"
    out.mkdir(parents=True)
    play = role_play(ROLE, [{
        "name": "Render",
        "ansible.builtin.template": {"src": str(ROLE / "templates" / "{{ item }}.j2"),
                                     "dest": f"{out}/{{{{ item }}}}", "mode": "0644"},
        "loop": ["site.conf", "upstream.conf", "cloudflare-realip.conf",
                 "maintenance.html", "hardening.conf"],
    }, {
        "name": "Keep the sockets the links point at",
        "ansible.builtin.copy": {"content": "{{ __nginx_edge_sockets | to_json }}",
                                 "dest": f"{out}/sockets.json", "mode": "0644"},
    }])
    rc, output = run_play(tmp_path, play, {"gantry_app_name": "shop", "gantry_environment": "local"}
                          | extra)
    assert rc == 0, output
    return {p.name: p.read_text() for p in out.iterdir()}


def directives(text):
    """The config's lines without comments and indentation."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_upstream_lists_a_link_to_each_socket_twice_without_keepalive_by_default(tmp_path):
    files = render(tmp_path, nginx_edge_upstream_sockets=["/run/a.sock", "/run/b.sock"])
    lines = directives(files["upstream.conf"])
    assert lines.count("server unix:/etc/nginx/gantry/shop/upstream-0.sock max_fails=0;") == 2
    assert lines.count("server unix:/etc/nginx/gantry/shop/upstream-1.sock max_fails=0;") == 2
    assert json.loads(files["sockets.json"]) == ["/run/a.sock", "/run/b.sock"]
    assert not [line for line in lines if line.startswith("keepalive")]
    assert "proxy_http_version 1.1;" not in directives(files["site.conf"])


def test_upstream_keepalive_when_asked(tmp_path):
    files = render(tmp_path, nginx_edge_upstream_keepalive=16, gunicorn_keepalive=5)
    lines = directives(files["upstream.conf"])
    assert "keepalive 16;" in lines
    assert "proxy_http_version 1.1;" in directives(files["site.conf"])
    # Below Gunicorn's keep-alive, so nginx drops an idle connection first.
    assert "keepalive_timeout 4s;" in lines
    assert "upstream shop {" in lines


def test_site_retries_idempotent_requests_once_and_sets_the_proxy_headers(tmp_path):
    site = directives(render(tmp_path, gunicorn_timeout=30)["site.conf"])
    for line in [
        "proxy_pass http://shop;",
        "proxy_next_upstream error timeout http_502;",
        "proxy_next_upstream_tries 2;",
        "proxy_next_upstream_timeout 30s;",
        "proxy_read_timeout 35s;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_set_header X-Request-Id $request_id;",
        "proxy_request_buffering on;",
        "proxy_buffering on;",
        "client_max_body_size 100m;",
        "return 301 https://$host$request_uri;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "access_log /var/log/nginx/shop.access.log gantry_shop;",
        "if (-f /var/lib/gantry/maintenance/shop) {",
        "error_page 503 @gantry_maintenance;",
        "add_header Retry-After 120 always;",
    ]:
        assert line in site, line
    assert not any("non_idempotent" in line for line in site)
    assert not any("Strict-Transport-Security" in line for line in site)
    assert not any(line.startswith("set_real_ip_from") for line in site)


def test_cloudflare_lock_tests_the_connection_address_not_the_visitor(tmp_path):
    files = render(tmp_path, nginx_edge_cloudflare=True, nginx_edge_cloudflare_origin_lock=True,
                   nginx_edge_allow_extra=["192.0.2.10"],
                   __nginx_edge_cloudflare_fetched={"ranges": ["198.51.100.0/24"]})
    realip = directives(files["cloudflare-realip.conf"])
    assert realip == ["set_real_ip_from 198.51.100.0/24;", "real_ip_header CF-Connecting-IP;"]
    site = directives(files["site.conf"])
    assert "geo $realip_remote_addr $gantry_shop_origin_allowed {" in site
    assert "198.51.100.0/24 1;" in site and "192.0.2.10 1;" in site
    assert "if ($gantry_shop_origin_allowed = 0) {" in site
    assert not any(line.startswith(("allow ", "deny ")) for line in site)


def test_static_locations_cache_hashed_names_for_a_year(tmp_path):
    site = directives(render(
        tmp_path, nginx_edge_tls_enabled=False, nginx_edge_hsts=False,
        nginx_edge_static_locations=[{"url_path": "/static/", "path": "/srv/shop/static/"}],
    )["site.conf"])
    assert "location ^~ /static/ {" in site
    assert "alias /srv/shop/static/;" in site
    assert '"~\\.[0-9a-f]{8,}\\.[^/]*$" "public, max-age=31536000, immutable";' in site
    assert 'default "public, max-age=300";' in site
    assert not any("ssl" in line or "return 301" in line for line in site)


def test_extra_config_and_hsts_land_in_the_app_server(tmp_path):
    site = directives(render(tmp_path, nginx_edge_hsts=True,
                             nginx_edge_extra_server_config="location = /x {\n  return 204;\n}")
                      ["site.conf"])
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in site
    assert "location = /x {" in site and "return 204;" in site


# -- the Cloudflare module -----------------------------------------------------------

def load_module():
    spec = importlib.util.spec_from_file_location(
        "gantry_test_cloudflare_ips", ROOT / "plugins" / "modules" / "cloudflare_ips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_module(args):
    from ansible.module_utils.common import warnings
    from ansible.module_utils.testing import patch_module_args

    # Warnings collect in a module-level store, which outlives one run in-process.
    warnings._global_warnings.clear()
    module = load_module()
    out = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=False)), contextlib.redirect_stdout(out):
        with contextlib.suppress(SystemExit):
            module.main()
    return json.loads(out.getvalue())


class IpsServer:
    """Serves GET /client/v4/ips like Cloudflare (no token), with a chosen answer."""

    def __init__(self, status=200, result=None):
        self.status = status
        self.result = result
        self.requests = []

    def __enter__(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                """Quiet."""

            def do_GET(self):  # noqa: N802 - the stdlib's name
                owner.requests.append((self.path, self.headers.get("Authorization")))
                ok = self.path.split("?")[0] == "/client/v4/ips" and owner.status == 200
                body = json.dumps({"success": ok, "errors": [] if ok else [{"code": 1000}],
                                   "messages": [], "result": owner.result if ok else None})
                self.send_response(owner.status if self.path.endswith("/ips") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/client/v4"


FALLBACK = ["173.245.48.0/20", "2400:cb00::/32"]


def test_ranges_come_from_the_api_without_a_token(monkeypatch):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    result = {"ipv4_cidrs": ["198.51.100.0/24", "203.0.113.0/24", "198.51.100.7/24"],
              "ipv6_cidrs": ["2001:db8::/32"], "etag": "abc"}
    with IpsServer(result=result) as api:
        out = run_module({"base_url": api.base_url, "fallback": FALLBACK})
    assert out["source"] == "api", out
    assert out["ranges"] == ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
    assert out["etag"] == "abc"
    assert out["changed"] is False
    assert api.requests == [("/client/v4/ips", None)]


@pytest.mark.parametrize(("status", "result"), [
    (500, None),
    (200, {"ipv4_cidrs": [], "ipv6_cidrs": []}),
    (200, {"ipv4_cidrs": ["0.0.0.0/0"], "ipv6_cidrs": []}),
    (200, {"ipv4_cidrs": ["not-a-range"], "ipv6_cidrs": []}),
], ids=["server-error", "empty", "whole-internet", "garbage"])
def test_unusable_answers_fall_back_with_a_warning(status, result):
    with IpsServer(status=status, result=result) as api:
        out = run_module({"base_url": api.base_url, "fallback": FALLBACK, "timeout": 3})
    assert out["source"] == "fallback", out
    assert out["ranges"] == FALLBACK
    # ansible-core 2.19 returns each warning as a structured event.
    assert "nginx_edge_cloudflare_fallback_ranges" in json.dumps(out.get("warnings")), out


def test_unreachable_api_falls_back_with_a_warning():
    with IpsServer() as api:
        base_url = api.base_url
    out = run_module({"base_url": base_url, "fallback": FALLBACK, "timeout": 2})
    assert out["source"] == "fallback"
    assert out["ranges"] == FALLBACK
    assert "could not be read" in json.dumps(out.get("warnings")), out


def test_fetch_off_uses_the_pinned_list_quietly():
    out = run_module({"fallback": FALLBACK, "fetch": False})
    assert (out["source"], out["ranges"], out["changed"]) == ("fallback", FALLBACK, False)
    assert "warnings" not in out, out


def test_pinned_list_of_the_defaults_is_valid():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    out = run_module({"fallback": defaults["nginx_edge_cloudflare_fallback_ranges"],
                      "fetch": False})
    assert len(out["ranges"]) == len(defaults["nginx_edge_cloudflare_fallback_ranges"])


# -- the maintenance playbook --------------------------------------------------------

@pytest.mark.parametrize("value", ["maybe", "ON ", "true", ""])
def test_maintenance_refuses_anything_but_on_or_off(tmp_path, value):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"app_servers": {
        "hosts": {"gantry-no-such-host-1": {}},
        "vars": {"ansible_connection": "community.docker.docker", "gantry_app_name": "shop"}}}))
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/maintenance.yml",
         "-e", json.dumps({"maintenance": value})],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "give -e maintenance=on or -e maintenance=off; nothing changed" in out, out
    # A host contacted ends UNREACHABLE, or with pipelining in a failed module run.
    assert "UNREACHABLE" not in out and "No such container" not in out, out


def test_module_documentation_parses():
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(BIN / "ansible-doc"), "--json", "gantry.deploy.cloudflare_ips"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["gantry.deploy.cloudflare_ips"]
    assert set(doc["doc"]["options"]) == {"base_url", "fallback", "fetch", "timeout"}
    assert "ranges" in doc["return"] and doc["examples"].strip()


# -- the upstream: kept by the main entry point, switched by the upstream one ---------

def upstream_lines(text):
    return [line for line in directives(text) if line.startswith("server ")]


LINK = "server unix:/etc/nginx/gantry/shop/upstream-0.sock max_fails=0;"


def test_no_sockets_and_no_upstream_yet_is_a_placeholder(tmp_path):
    files = render(tmp_path)
    assert upstream_lines(files["upstream.conf"]) == [LINK] * 2
    assert json.loads(files["sockets.json"]) == ["/run/gantry/shop/none.sock"]


def as_slurped(text):
    return {"content": base64.b64encode(text.encode()).decode()}


def test_no_sockets_keeps_those_the_host_serves_now(tmp_path):
    links = {"results": [{"stat": {"lnk_target": "/run/gantry/shop/r7.sock"}}]}
    files = render(tmp_path / "links", __nginx_edge_links_current=links)
    assert upstream_lines(files["upstream.conf"]) == [LINK] * 2
    assert json.loads(files["sockets.json"]) == ["/run/gantry/shop/r7.sock"]
    # Sockets given win over the host's.
    files = render(tmp_path / "given", __nginx_edge_links_current=links,
                   nginx_edge_upstream_sockets=["/run/gantry/shop/r8.sock"])
    assert json.loads(files["sockets.json"]) == ["/run/gantry/shop/r8.sock"]


def test_an_upstream_from_before_the_links_keeps_its_sockets(tmp_path):
    entry = "    server unix:/run/gantry/shop/r6.sock max_fails=0;\n"
    legacy = "upstream shop {\n" + entry * 2 + "}\n"
    files = render(tmp_path / "legacy", __nginx_edge_upstream_current=as_slurped(legacy))
    assert json.loads(files["sockets.json"]) == ["/run/gantry/shop/r6.sock"]
    # An upstream of links whose links are gone never points a link at itself.
    links_conf = render(tmp_path / "conf")["upstream.conf"]
    files = render(tmp_path / "gone", __nginx_edge_upstream_current=as_slurped(links_conf))
    assert json.loads(files["sockets.json"]) == ["/run/gantry/shop/none.sock"]


def switch(tmp_path, sockets, *args, **extra):
    """Run the upstream entry point on this machine, in tmp_path instead of /etc/nginx."""
    play = [{
        "name": "Switch",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": "gantry.deploy.nginx_edge",
                                              "tasks_from": "upstream"}},
            {"name": "Keep the facts", "delegate_to": "localhost", "ansible.builtin.copy": {
                "content": "{{ {'offset': nginx_edge_upstream_log_offset,"
                           " 'log': nginx_edge_access_log,"
                           " 'links': nginx_edge_upstream_links,"
                           " 'switched': nginx_edge_upstream_switched} | to_json }}",
                "dest": str(tmp_path / "facts.json"), "mode": "0644"},
             "check_mode": False},
        ],
    }]
    extra = {"nginx_edge_upstream_sockets": sockets,
             "__nginx_edge_dir": str(tmp_path / "gantry" / "shop"),
             "__nginx_edge_access_log": str(tmp_path / "shop.access.log"),
             # The first deploy's case: nothing to check or reload on this machine.
             "__nginx_edge_installed": {"stat": {"exists": False}}} | GOOD | extra
    rc, out = run_play(tmp_path, play, extra, *args)
    facts = json.loads((tmp_path / "facts.json").read_text()) if rc == 0 else None
    return rc, out, facts


def test_upstream_entry_point_switches_the_link_and_reports_it(tmp_path):
    shop = tmp_path / "gantry" / "shop"
    conf, link = shop / "upstream.conf", shop / "upstream-0.sock"
    (tmp_path / "shop.access.log").write_text("x" * 123)

    rc, out, facts = switch(tmp_path, ["/run/gantry/shop/r1.sock"], "--check")
    assert rc == 0, out
    assert facts.pop("log") == str(tmp_path / "shop.access.log")
    assert facts == {"offset": 123, "links": [str(link)], "switched": True}, out
    assert not shop.exists()

    rc, out, facts = switch(tmp_path, ["/run/gantry/shop/r1.sock"])
    assert rc == 0, out
    assert (facts["offset"], facts["switched"]) == (123, True)
    assert upstream_lines(conf.read_text()) == [f"server unix:{link} max_fails=0;"] * 2
    assert os.readlink(link) == "/run/gantry/shop/r1.sock"

    rc, out, facts = switch(tmp_path, ["/run/gantry/shop/r1.sock"])
    assert (rc, facts["switched"]) == (0, False), out

    # The next switch moves the link only: nginx's config, as nginx loaded it, stays.
    written = conf.stat().st_mtime_ns
    (tmp_path / "shop.access.log").unlink()
    rc, out, facts = switch(tmp_path, ["/run/gantry/shop/r2.sock"])
    assert (facts["offset"], facts["switched"]) == (0, True), out
    assert os.readlink(link) == "/run/gantry/shop/r2.sock"
    assert conf.stat().st_mtime_ns == written
    assert sorted(p.name for p in shop.iterdir()) == ["upstream-0.sock", "upstream.conf"]

    # Fewer sockets: the link upstream.conf no longer names goes, and the copy of the
    # replaced upstream.conf with it.
    rc, out, _ = switch(tmp_path, ["/run/gantry/shop/r3.sock", "/run/gantry/shop/r4.sock"])
    assert os.readlink(shop / "upstream-1.sock") == "/run/gantry/shop/r4.sock", out
    rc, out, _ = switch(tmp_path, ["/run/gantry/shop/r5.sock"])
    assert sorted(p.name for p in shop.iterdir()) == ["upstream-0.sock", "upstream.conf"], out
    assert os.readlink(link) == "/run/gantry/shop/r5.sock"


@pytest.mark.parametrize(("sockets", "fragment"), [
    ([], "- nginx_edge_upstream_sockets is []: at least one absolute socket path"),
    (["run/gantry/shop/r1.sock"], '"run/gantry/shop/r1.sock"'),
    (["/run/gantry/shop/r1.sock;evil"], '"/run/gantry/shop/r1.sock;evil"'),
], ids=["empty", "relative", "injection"])
def test_upstream_entry_point_refuses_bad_sockets_naming_them(tmp_path, sockets, fragment):
    rc, out, _ = switch(tmp_path, sockets)
    assert rc != 0, out
    assert fragment in out, out
    assert "- nginx_edge_upstream_sockets is" in out, out
    # Only what upstream.conf is made of is checked there.
    assert "nginx_edge_tls_enabled" not in out, out
    assert not (tmp_path / "gantry").exists()


def test_upstream_entry_point_checks_types(tmp_path):
    rc, out, _ = switch(tmp_path, "/run/gantry/shop/r1.sock", nginx_edge_upstream_keepalive="x")
    assert rc != 0, out
    assert "nginx_edge_upstream_keepalive" in out, out
