"""Options every Gantry Cloudflare module shares (see module_utils/gantry_cloudflare.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_token:
    description:
      - Cloudflare API token, with the permission named in the module's notes.
      - Falls back to the E(CLOUDFLARE_API_TOKEN) environment variable. Never logged.
    type: str
    required: true
  base_url:
    description:
      - Base URL of the Cloudflare v4 API; falls back to E(CLOUDFLARE_BASE_URL).
    type: str
    default: https://api.cloudflare.com/client/v4
  zone_id:
    description: Id of the zone. Mutually exclusive with O(zone_name).
    type: str
  zone_name:
    description:
      - Name of the zone, such as C(example.com), looked up with the API
        (needs C(Zone > Zone > Read)).
      - Mutually exclusive with O(zone_id).
    type: str
  timeout:
    description: Seconds to wait for each API response.
    type: float
    default: 30
  retries:
    description:
      - How many times a call is retried after a 5xx, a network error or a short rate limit.
    type: int
    default: 3
  retry_delay:
    description:
      - First backoff delay in seconds after a 5xx or network error; doubles on each retry,
        up to 30.
    type: float
    default: 1
  rate_limit_max_wait:
    description:
      - Longest Retry-After, in seconds, that the module sleeps through on HTTP 429.
        A longer one fails at once with a clear message (a global-limit block lasts five minutes).
    type: int
    default: 60
"""

    # Attribute sets, as gantry_cloudflare.check_and_diff or gantry_cloudflare.check_no_diff.
    CHECK_AND_DIFF = r"""
attributes:
  check_mode:
    description: Reads the zone and reports what would change, writing nothing.
    support: full
  diff_mode:
    description: Returns the values before and after the change.
    support: full
"""

    CHECK_NO_DIFF = r"""
attributes:
  check_mode:
    description: Reads the zone and reports what would be sent, writing nothing.
    support: full
  diff_mode:
    description: A purge has no before and after to show.
    support: none
"""
