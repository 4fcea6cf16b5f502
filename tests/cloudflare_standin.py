"""TEST DOUBLE: a local stand-in for the Cloudflare v4 API. It is not Cloudflare.

Used only by Gantry's tests, so that the Cloudflare modules run end to end through the
official ``cloudflare`` SDK without network access. It is a stateful stdlib
``ThreadingHTTPServer`` bound to 127.0.0.1 on a free port, speaking the slice of the API
the modules use, with the real paths, the ``{success, errors, messages, result}``
envelope and the real status codes:

- ``GET  /zones?name=`` (paginated, with ``result_info``)
- ``GET|PUT /zones/{id}/rulesets/phases/{phase}/entrypoint`` (404 code 10003 when the
  zone has no entry point yet; PUT replaces the rule list and creates the entry point)
- ``GET|PATCH /zones/{id}/settings/{name}``
- ``POST /zones/{id}/purge_cache`` (one kind per call, at most ``purge_limit`` items)

Tokens carry permissions: an unknown token gets 401, a token without the permission an
endpoint needs gets 403 code 10000 "Authentication error", like the real API.

Control API (in-process): ``add_zone``, ``seed_rules``, ``ruleset``, ``set_setting``,
``setting``, ``inject`` (the next N matching calls fail with a given status and
optional Retry-After), ``calls`` (the request log) and ``purges``.
``run_module`` at the end runs one of our modules in-process against it.
Run as a script (``python tests/cloudflare_standin.py --port P --zone NAME``) it serves
until killed, for the molecule scenario and ``make demo``; ``GET /_standin/purges`` then
returns the purge log and ``GET /_standin/state`` the zones, rules, settings and purges
(those paths are the stand-in's own, not Cloudflare's).

The validation here is deliberately small; behaviour not listed above is not modelled.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/client/v4"
# Not part of Cloudflare's API: let a test in another process read the purge log, and a
# person trying `make demo` see the zones, rules, settings and purges the stand-in holds.
CONTROL_PURGES = "/_standin/purges"
CONTROL_STATE = "/_standin/state"
TOKEN = "standin-test-token"

ALL_PERMISSIONS = frozenset({
    "zone:read",
    "cache_rules:read",
    "cache_rules:edit",
    "zone_settings:read",
    "zone_settings:edit",
    "cache_purge",
})

ON_OFF_SETTINGS = ("always_online", "brotli", "development_mode")
BROWSER_CACHE_TTLS = (0, 30, 60, 120, 300, 1200, 1800, 3600, 7200, 10800, 14400, 18000,
                      28800, 43200, 57600, 72000, 86400, 172800, 259200, 345600, 432000,
                      691200, 1382400, 2073600, 2678400, 5356800, 16070400, 31536000)
DEFAULT_SETTINGS = {
    "browser_cache_ttl": 14400,
    "cache_level": "aggressive",
    "always_online": "off",
    "brotli": "on",
    "development_mode": "off",
}
ERROR_TEXT = {
    400: (1004, "Bad request"),
    401: (10001, "Unable to authenticate request"),
    403: (10000, "Authentication error"),
    404: (7003, "Could not route to the requested resource"),
    429: (971, "Please wait and consider throttling your request speed"),
    500: (10002, "Internal server error"),
    502: (10002, "Bad gateway"),
    503: (10002, "Service unavailable"),
}
RULE_READ_ONLY = ("id", "version", "last_updated", "categories")


def _now():
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _ApiError(Exception):
    def __init__(self, status, message=None, code=None, headers=None):
        super().__init__(message)
        default_code, default_message = ERROR_TEXT.get(status, (1000, "Error"))
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        self.headers = headers or {}


class CloudflareStandIn:
    """The stand-in server and its in-process control API."""

    def __init__(self, purge_limit=30):
        self.purge_limit = purge_limit
        self.tokens = {TOKEN: set(ALL_PERMISSIONS)}
        self.zones = {}
        self.rulesets = {}
        self.settings = {}
        self.purges = []
        self.calls = []
        self._injections = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self, port=0):
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}{API_PREFIX}"

    # -- control API -----------------------------------------------------------------
    def add_token(self, token, permissions):
        self.tokens[token] = set(permissions)

    def add_zone(self, name, zone_id=None):
        zone_id = zone_id or uuid.uuid4().hex
        with self._lock:
            self.zones[zone_id] = {"id": zone_id, "name": name, "status": "active",
                                   "type": "full", "paused": False}
            self.settings[zone_id] = {k: {"value": v, "editable": True}
                                      for k, v in DEFAULT_SETTINGS.items()}
        return zone_id

    def seed_rules(self, zone_id, rules, phase="http_request_cache_settings"):
        """Create the entry point as if someone else had, with ids and versions set."""
        with self._lock:
            stamped = []
            for rule in copy.deepcopy(rules):
                rule.setdefault("id", uuid.uuid4().hex)
                rule.setdefault("version", "1")
                rule.setdefault("last_updated", _now())
                rule.setdefault("enabled", True)
                stamped.append(rule)
            self.rulesets.setdefault(zone_id, {})[phase] = {
                "id": uuid.uuid4().hex, "name": "default", "description": "",
                "kind": "zone", "phase": phase, "version": "1",
                "last_updated": _now(), "rules": stamped,
            }

    def ruleset(self, zone_id, phase="http_request_cache_settings"):
        with self._lock:
            return copy.deepcopy(self.rulesets.get(zone_id, {}).get(phase))

    def set_setting(self, zone_id, name, value, editable=True):
        with self._lock:
            self.settings[zone_id][name] = {"value": value, "editable": editable}

    def setting(self, zone_id, name):
        with self._lock:
            return self.settings[zone_id][name]["value"]

    def inject(self, status, times=1, method=None, path=None, retry_after=None,
               message=None, code=None, skip=0):
        """Fail ``times`` calls whose method and path (substring) match, after ``skip``."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._injections.append({"status": status, "times": times, "method": method,
                                     "path": path, "headers": headers, "skip": skip,
                                     "message": message, "code": code})

    def writes(self):
        return [c for c in self.calls if c["method"] != "GET"]

    # -- request handling ------------------------------------------------------------
    def _injected(self, method, path):
        with self._lock:
            for inj in self._injections:
                if inj["times"] <= 0:
                    continue
                if inj["method"] and inj["method"] != method:
                    continue
                if inj["path"] and inj["path"] not in path:
                    continue
                if inj["skip"] > 0:
                    inj["skip"] -= 1
                    continue
                inj["times"] -= 1
                return _ApiError(inj["status"], inj["message"], inj["code"], inj["headers"])
        return None

    def handle(self, method, path, query, headers, body):
        """Return (status, envelope, headers) for one request."""
        entry = {"method": method, "path": path, "query": query, "body": body}
        self.calls.append(entry)
        try:
            error = self._injected(method, path)
            if error:
                raise error
            if not path.startswith(API_PREFIX + "/"):
                raise _ApiError(404)
            token = headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                raise _ApiError(401)
            perms = self.tokens[token]
            result, info = self._route(method, path[len(API_PREFIX):].strip("/").split("/"),
                                       query, body, perms)
        except _ApiError as exc:
            entry["status"] = exc.status
            envelope = {"success": False, "result": None, "messages": [],
                        "errors": [{"code": exc.code, "message": exc.message}]}
            return exc.status, envelope, exc.headers
        entry["status"] = 200
        envelope = {"success": True, "errors": [], "messages": [], "result": result}
        if info is not None:
            envelope["result_info"] = info
        return 200, envelope, {}

    def _route(self, method, parts, query, body, perms):
        def need(perm):
            if perm not in perms:
                raise _ApiError(403)

        if parts == ["zones"] and method == "GET":
            need("zone:read")
            return self._list_zones(query)
        if len(parts) < 3 or parts[0] != "zones":
            raise _ApiError(404)
        zone_id = parts[1]
        if zone_id not in self.zones:
            raise _ApiError(404)
        rest = parts[2:]
        if len(rest) == 4 and rest[:2] == ["rulesets", "phases"] and rest[3] == "entrypoint":
            if method == "GET":
                need("cache_rules:read")
                return self._get_entrypoint(zone_id, rest[2]), None
            if method == "PUT":
                need("cache_rules:edit")
                return self._put_entrypoint(zone_id, rest[2], body), None
        if len(rest) == 2 and rest[0] == "settings":
            if method == "GET":
                need("zone_settings:read")
                return self._get_setting(zone_id, rest[1]), None
            if method == "PATCH":
                need("zone_settings:edit")
                return self._patch_setting(zone_id, rest[1], body), None
        if rest == ["purge_cache"] and method == "POST":
            need("cache_purge")
            return self._purge(zone_id, body), None
        raise _ApiError(404)

    def _list_zones(self, query):
        name = query.get("name")
        page = int(query.get("page", 1))
        per_page = int(query.get("per_page", 20))
        with self._lock:
            zones = [copy.deepcopy(z) for z in self.zones.values()
                     if name is None or z["name"] == name]
        chunk = zones[(page - 1) * per_page: page * per_page]
        total_pages = max(1, -(-len(zones) // per_page))
        return chunk, {"page": page, "per_page": per_page, "count": len(chunk),
                       "total_count": len(zones), "total_pages": total_pages}

    def _get_entrypoint(self, zone_id, phase):
        with self._lock:
            ruleset = self.rulesets.get(zone_id, {}).get(phase)
            if ruleset is None:
                raise _ApiError(404, f"could not find entrypoint ruleset in the '{phase}' phase",
                                code=10003)
            return copy.deepcopy(ruleset)

    def _put_entrypoint(self, zone_id, phase, body):
        if not isinstance(body, dict) or not isinstance(body.get("rules", []), list):
            raise _ApiError(400, "rules must be a list")
        with self._lock:
            old = self.rulesets.get(zone_id, {}).get(phase)
            old_rules = {r["id"]: r for r in (old or {}).get("rules", [])}
            version = str(int(old["version"]) + 1) if old else "1"
            refs = set()
            new_rules = []
            for sent in body.get("rules", []):
                if not isinstance(sent.get("expression"), str):
                    raise _ApiError(400, "rule is missing an expression", code=20005)
                if sent.get("action") != "set_cache_settings":
                    raise _ApiError(400, f"action {sent.get('action')!r} is not allowed "
                                    f"in phase {phase}", code=20021)
                ref = sent.get("ref") or sent.get("id") or uuid.uuid4().hex
                if ref in refs:
                    raise _ApiError(400, f"duplicate rule ref '{ref}'", code=20217)
                refs.add(ref)
                rule = {k: copy.deepcopy(v) for k, v in sent.items() if k not in RULE_READ_ONLY}
                rule["ref"] = ref
                rule.setdefault("enabled", True)
                previous = old_rules.get(sent.get("id")) if sent.get("id") else None
                if sent.get("id") and previous is None:
                    raise _ApiError(400, f"could not find rule '{sent['id']}' to update",
                                    code=20022)
                if previous is not None:
                    rule["id"] = previous["id"]
                    kept = {k: v for k, v in previous.items() if k not in RULE_READ_ONLY}
                    content = {k: v for k, v in rule.items() if k not in RULE_READ_ONLY}
                    if kept == content:
                        rule["version"] = previous["version"]
                        rule["last_updated"] = previous["last_updated"]
                    else:
                        rule["version"] = str(int(previous["version"]) + 1)
                        rule["last_updated"] = _now()
                else:
                    rule["id"] = uuid.uuid4().hex
                    rule["version"] = "1"
                    rule["last_updated"] = _now()
                new_rules.append(rule)
            ruleset = {
                "id": old["id"] if old else uuid.uuid4().hex,
                "name": body.get("name") or (old or {}).get("name") or "default",
                "description": body.get("description", (old or {}).get("description", "")),
                "kind": "zone", "phase": phase, "version": version,
                "last_updated": _now(), "rules": new_rules,
            }
            self.rulesets.setdefault(zone_id, {})[phase] = ruleset
            return copy.deepcopy(ruleset)

    def _get_setting(self, zone_id, name):
        with self._lock:
            current = self.settings[zone_id].get(name)
            if current is None:
                raise _ApiError(400, "Unrecognized zone setting name", code=1003)
            return {"id": name, "value": copy.deepcopy(current["value"]),
                    "editable": current["editable"], "modified_on": None}

    def _patch_setting(self, zone_id, name, body):
        if not isinstance(body, dict) or "value" not in body:
            raise _ApiError(400, "value is required", code=1004)
        value = body["value"]
        if name in ON_OFF_SETTINGS and value not in ("on", "off"):
            raise _ApiError(400, f"Invalid value for zone setting {name}", code=1007)
        if name == "cache_level" and value not in ("aggressive", "basic", "simplified"):
            raise _ApiError(400, f"Invalid value for zone setting {name}", code=1007)
        if name == "browser_cache_ttl" and value not in BROWSER_CACHE_TTLS:
            raise _ApiError(400, f"Invalid value for zone setting {name}", code=1007)
        with self._lock:
            current = self.settings[zone_id].get(name)
            if current is None:
                raise _ApiError(400, "Unrecognized zone setting name", code=1003)
            if not current["editable"]:
                raise _ApiError(400, f"The setting {name} is not editable on this plan",
                                code=1025)
            current["value"] = copy.deepcopy(value)
            return {"id": name, "value": copy.deepcopy(value), "editable": True,
                    "modified_on": _now()}

    def _purge(self, zone_id, body):
        kinds = [k for k in ("files", "prefixes", "hosts", "tags", "purge_everything")
                 if isinstance(body, dict) and k in body]
        if len(kinds) != 1:
            raise _ApiError(400, "send exactly one of files, prefixes, hosts, tags, "
                            "purge_everything", code=1012)
        kind = kinds[0]
        if kind != "purge_everything":
            items = body[kind]
            if not isinstance(items, list) or not items:
                raise _ApiError(400, f"{kind} must be a non-empty list", code=1012)
            if len(items) > self.purge_limit:
                raise _ApiError(400, f"Purge request exceeds {self.purge_limit} items",
                                code=1070)
        elif body[kind] is not True:
            raise _ApiError(400, "purge_everything must be true", code=1012)
        with self._lock:
            self.purges.append({"zone_id": zone_id, **copy.deepcopy(body)})
        return {"id": uuid.uuid4().hex}


class _Handler(BaseHTTPRequestHandler):
    owner: CloudflareStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        """Keep test output quiet."""

    def _serve(self):
        url = urlsplit(self.path)
        if url.path in (CONTROL_PURGES, CONTROL_STATE):
            owner = self.owner
            with owner._lock:
                shown = owner.purges if url.path == CONTROL_PURGES else {
                    "zones": list(owner.zones.values()), "rulesets": owner.rulesets,
                    "settings": owner.settings, "purges": owner.purges}
                data = json.dumps(shown, indent=2).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status, envelope, headers = self.owner.handle(self.command, url.path, query,
                                                      self.headers, body)
        data = json.dumps(envelope).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _serve


# -- driving Gantry's modules in-process, the way Ansible runs them ------------------

REPO = Path(__file__).resolve().parent.parent


def load_module(name):
    """Import plugins/modules/<name>.py; tests/conftest.py makes our module_utils
    importable, as the collection's."""
    spec = importlib.util.spec_from_file_location(f"gantry_test_{name}",
                                                  REPO / "plugins" / "modules" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_module(name, args, check_mode=False, diff=False):
    """Run a module's main() and return the JSON it printed (no_log masking included)."""
    from ansible.module_utils.testing import patch_module_args

    module = load_module(name)
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    return json.loads(out.getvalue())


def main():
    """Serve the stand-in until killed, for tests that run Ansible in another process."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--zone", required=True, help="zone name to create")
    opts = parser.parse_args()
    standin = CloudflareStandIn().start(opts.port)
    standin.add_zone(opts.zone)
    print(f"Cloudflare stand-in (a test double) at {standin.base_url}, token {TOKEN}", flush=True)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    signal.sigwait(stop_signals)
    standin.stop()


if __name__ == "__main__":
    main()
