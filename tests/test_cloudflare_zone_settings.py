"""cloudflare_zone_settings through the real cloudflare SDK against the local stand-in."""

from cloudflare_standin import TOKEN, run_module

MODULE = "cloudflare_zone_settings"


def run(cf, check_mode=False, diff=False, **kwargs):
    args = {"api_token": TOKEN, "base_url": cf.base_url, "zone_id": cf.zone, "retry_delay": 0.01}
    args.update(kwargs)
    return run_module(MODULE, args, check_mode=check_mode, diff=diff)


def patches(cf):
    return [(c["path"].rsplit("/", 1)[1], c["body"]["value"], c["status"])
            for c in cf.calls if c["method"] == "PATCH"]


def test_patches_only_what_differs_then_nothing(cf):
    # brotli is already "on"; YAML's `on` arrives as True and must compare equal.
    wanted = {"browser_cache_ttl": "86400", "cache_level": "aggressive", "brotli": True,
              "development_mode": False, "always_online": True}

    result = run(cf, settings=wanted)

    assert result["changed"] is True
    assert result["changed_settings"] == {
        "browser_cache_ttl": {"before": 14400, "after": 86400},
        "always_online": {"before": "off", "after": "on"},
    }
    assert patches(cf) == [("browser_cache_ttl", 86400, 200), ("always_online", "on", 200)]
    assert cf.setting(cf.zone, "browser_cache_ttl") == 86400
    assert cf.setting(cf.zone, "always_online") == "on"
    assert result["settings"]["brotli"] == "on"

    cf.calls.clear()
    again = run(cf, settings=wanted)
    assert again["changed"] is False
    assert again["changed_settings"] == {}
    assert cf.writes() == []


def test_check_mode_and_diff(cf):
    result = run(cf, check_mode=True, diff=True,
                 settings={"cache_level": "basic", "development_mode": "off"})
    assert result["changed"] is True
    assert result["diff"] == {"before": {"cache_level": "aggressive"},
                              "after": {"cache_level": "basic"}}
    assert result["settings"]["cache_level"] == "basic"
    assert cf.writes() == []
    assert cf.setting(cf.zone, "cache_level") == "aggressive"


def test_not_editable_setting_fails_before_any_write(cf):
    cf.set_setting(cf.zone, "development_mode", "off", editable=False)
    result = run(cf, settings={"cache_level": "basic", "development_mode": "on"})
    assert result["failed"] is True
    assert "not editable" in result["msg"] and "development_mode" in result["msg"]
    assert cf.writes() == []


def test_unknown_setting_fails_before_any_write(cf):
    result = run(cf, settings={"cache_level": "basic", "no_such_setting": "on"})
    assert result["failed"] is True
    assert "Unrecognized zone setting name" in result["msg"]
    assert cf.writes() == []


def test_failed_write_rolls_back_earlier_changes(cf):
    result = run(cf, settings={"cache_level": "basic", "always_online": "on",
                               "browser_cache_ttl": 12345})
    assert result["failed"] is True
    assert "HTTP 400" in result["msg"]
    assert "Restored the settings already changed: cache_level, always_online" in result["msg"]
    assert cf.setting(cf.zone, "cache_level") == "aggressive"
    assert cf.setting(cf.zone, "always_online") == "off"
    assert cf.setting(cf.zone, "browser_cache_ttl") == 14400


def test_rollback_that_cannot_happen_is_reported(cf):
    # The first write goes through; the second and every restore are throttled for minutes.
    cf.inject(429, times=100, method="PATCH", path="always_online", retry_after=300)
    cf.inject(429, times=100, method="PATCH", path="cache_level", retry_after=300, skip=1)
    result = run(cf, settings={"cache_level": "basic", "always_online": "on"})
    assert result["failed"] is True
    assert result["status_code"] == 429
    assert cf.setting(cf.zone, "cache_level") == "basic"
    assert "NOT restored: cache_level" in result["msg"]


def test_missing_permission_is_named(cf):
    cf.add_token("read-only", {"zone_settings:read"})
    result = run(cf, api_token="read-only", settings={"cache_level": "basic"})
    assert result["failed"] is True
    assert "Zone > Zone Settings > Edit" in result["msg"]
    assert cf.setting(cf.zone, "cache_level") == "aggressive"


def test_server_errors_are_retried(cf):
    cf.inject(500, times=2, method="GET")
    cf.inject(502, times=1, method="PATCH")
    result = run(cf, settings={"cache_level": "simplified"})
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert patches(cf) == [("cache_level", "simplified", 502), ("cache_level", "simplified", 200)]
