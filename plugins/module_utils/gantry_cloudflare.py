# Copyright: Gantry contributors
# MIT License (see the repository)
"""Shared plumbing of Gantry's Cloudflare modules.

Builds the official ``cloudflare`` SDK client from the common module options, resolves a
zone by name, and runs every API call through one place that retries throttling and
server errors and turns every other failure into a message a human can act on.

Calls go through the SDK's ``with_raw_response`` accessors and read the JSON envelope
ourselves: rules we do not own must be sent back exactly as the API gave them, and the
typed response models would re-shape them (dates parsed, unset fields dropped).
"""

from __future__ import annotations

import email.utils
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import cloudflare
except ImportError:
    HAS_CLOUDFLARE = False
    CLOUDFLARE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CLOUDFLARE = True
    CLOUDFLARE_IMPORT_ERROR = None

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"

# Backoff between retries of 5xx/network errors never grows past this many seconds.
MAX_BACKOFF = 30.0

PERM_ZONE_READ = "Zone > Zone > Read"


def cloudflare_argument_spec():
    """Options every Gantry Cloudflare module accepts."""
    return dict(
        api_token=dict(type="str", required=True, no_log=True,
                       fallback=(env_fallback, ["CLOUDFLARE_API_TOKEN"])),
        base_url=dict(type="str", default=DEFAULT_BASE_URL,
                      fallback=(env_fallback, ["CLOUDFLARE_BASE_URL"])),
        zone_id=dict(type="str"),
        zone_name=dict(type="str"),
        timeout=dict(type="float", default=30.0),
        retries=dict(type="int", default=3),
        retry_delay=dict(type="float", default=1.0),
        rate_limit_max_wait=dict(type="int", default=60),
    )


CLOUDFLARE_MUTUALLY_EXCLUSIVE = [("zone_id", "zone_name")]
CLOUDFLARE_REQUIRED_ONE_OF = [("zone_id", "zone_name")]


class CloudflareAPIError(Exception):
    """A Cloudflare call failed for good; ``msg`` is meant for the user."""

    def __init__(self, msg, status=None, errors=None):
        super().__init__(msg)
        self.msg = msg
        self.status = status
        self.errors = errors or []
        # Return values describing what was done before the failure, for fail_json.
        self.details = {}

    def fail_kwargs(self):
        return dict(self.details, msg=self.msg, status_code=self.status,
                    cloudflare_errors=self.errors)


def _api_errors(body):
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return [e for e in errors if isinstance(e, dict)]
    return []


def _describe(errors):
    parts = []
    for err in errors:
        parts.append("{} (code {})".format(err.get("message", "?"), err.get("code", "?")))
    return "; ".join(parts) or "no error detail in the response"


def retry_after_seconds(headers):
    """Seconds the server asked us to wait, or None if it did not say."""
    raw = headers.get("retry-after") if headers is not None else None
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class GantryCloudflare:
    """SDK client plus the retry and error policy shared by the modules."""

    def __init__(self, module):
        self.module = module
        if not HAS_CLOUDFLARE:
            module.fail_json(msg=missing_required_lib("cloudflare"),
                             exception=CLOUDFLARE_IMPORT_ERROR)
        params = module.params
        for knob in ("retries", "rate_limit_max_wait"):
            if params[knob] < 0:
                module.fail_json(msg=f"{knob} must be zero or more")
        if params["retry_delay"] < 0 or params["timeout"] <= 0:
            module.fail_json(msg="retry_delay must be zero or more and timeout more than zero")
        self.retries = params["retries"]
        self.retry_delay = params["retry_delay"]
        self.rate_limit_max_wait = params["rate_limit_max_wait"]
        # The SDK's own retries are off: it would sleep through up to 60 s of Retry-After
        # on its own, hiding the rate limit from our policy.
        self.client = cloudflare.Cloudflare(
            api_token=params["api_token"],
            base_url=params["base_url"],
            timeout=params["timeout"],
            max_retries=0,
        )
        # The SDK prefers global-key credentials found in the environment over the token;
        # we authenticate with the token only.
        self.client.api_key = None
        self.client.api_email = None
        self.client.user_service_key = None
        self.requests = 0

    def call(self, what, permission, method, *args, **kwargs):
        """Run one raw-response SDK method and return the envelope's ``result``.

        ``what`` names the operation in error messages, ``permission`` is the token
        permission it needs. 5xx and network errors are retried with exponential
        backoff; 429 only when its Retry-After is within rate_limit_max_wait.
        """
        attempt = 0
        while True:
            self.requests += 1
            try:
                return method(*args, **kwargs).json().get("result")
            except (cloudflare.RateLimitError, cloudflare.InternalServerError,
                    cloudflare.APIConnectionError) as exc:
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    raise self._error(what, permission, exc, attempt + 1) from None
                time.sleep(wait)
                attempt += 1
            except cloudflare.APIStatusError as exc:
                raise self._error(what, permission, exc, attempt + 1) from None

    def _retry_wait(self, exc, attempt):
        """Seconds to sleep before the next attempt, or None to give up."""
        if attempt >= self.retries:
            return None
        if isinstance(exc, cloudflare.RateLimitError):
            wait = retry_after_seconds(exc.response.headers)
            if wait is not None:
                return wait if wait <= self.rate_limit_max_wait else None
        return min(self.retry_delay * (2 ** attempt), MAX_BACKOFF)

    def _error(self, what, permission, exc, attempts):
        if isinstance(exc, cloudflare.APIConnectionError):
            return CloudflareAPIError(
                f"{what}: cannot reach the Cloudflare API at {self.client.base_url} "
                f"({type(exc).__name__}; {attempts} attempts)")
        status = exc.status_code
        errors = _api_errors(exc.body)
        said = f"Cloudflare said: {_describe(errors)}"
        if status == 429:
            wait = retry_after_seconds(exc.response.headers)
            wait = "not given" if wait is None else f"{wait:.0f} s"
            msg = (f"{what}: Cloudflare is rate limiting this token (HTTP 429, Retry-After "
                   f"{wait}, rate_limit_max_wait {self.rate_limit_max_wait} s, {attempts} "
                   "attempts). Nothing further was sent. Over the global limit every call is "
                   "refused for five minutes: run again later, or raise rate_limit_max_wait.")
        elif status >= 500:
            msg = f"{what}: Cloudflare answered HTTP {status} on all {attempts} attempts. {said}"
        elif status == 401:
            msg = (f"{what}: Cloudflare rejected the API token (HTTP 401): it is missing, "
                   "malformed, expired or revoked; check api_token or CLOUDFLARE_API_TOKEN. "
                   f"{said}")
        elif status == 403:
            msg = (f"{what}: the API token lacks a permission (HTTP 403). Give it "
                   f"'{permission}' on this zone. {said}")
        else:
            msg = f"{what}: Cloudflare answered HTTP {status}. {said}"
        return CloudflareAPIError(msg, status=status, errors=errors)

    def zone_id(self):
        """The zone's id, looked up by name when only zone_name was given."""
        params = self.module.params
        if params["zone_id"]:
            return params["zone_id"]
        name = params["zone_name"].strip().rstrip(".").lower()
        zones = self.call(f"look up zone {name}", PERM_ZONE_READ,
                          self.client.zones.with_raw_response.list, name=name) or []
        matches = [z for z in zones if str(z.get("name", "")).lower() == name]
        if not matches:
            raise CloudflareAPIError(
                f"zone {name} not found: check zone_name, and that the API token has "
                f"'{PERM_ZONE_READ}' on it (zones the token cannot read are not listed)")
        if len(matches) > 1:
            raise CloudflareAPIError(
                f"{len(matches)} zones are named {name} (in different accounts); "
                "pass zone_id instead")
        return matches[0]["id"]


def run_cloudflare_module(module_options, run):
    """Build a module with the shared options, run it, and report failures cleanly.

    ``run(module, api)`` returns the result dict; a ValueError it raises is bad input.
    """
    argument_spec = cloudflare_argument_spec()
    argument_spec.update(module_options)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=CLOUDFLARE_MUTUALLY_EXCLUSIVE,
        required_one_of=CLOUDFLARE_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    api = GantryCloudflare(module)
    try:
        result = run(module, api)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except CloudflareAPIError as exc:
        module.fail_json(**exc.fail_kwargs())
    module.exit_json(**result)
