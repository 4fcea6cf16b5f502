"""cloudflare_purge through the real cloudflare SDK against the local stand-in."""

import pytest
from cloudflare_standin import TOKEN, run_module

MODULE = "cloudflare_purge"
URLS = [f"https://www.example.com/static/file{i:03d}.css" for i in range(75)]


def run(cf, check_mode=False, **kwargs):
    args = {"api_token": TOKEN, "base_url": cf.base_url, "zone_name": "example.com",
            "retry_delay": 0.01}
    args.update(kwargs)
    return run_module(MODULE, args, check_mode=check_mode)


def test_files_are_deduplicated_and_batched_to_the_limit(cf):
    result = run(cf, files=URLS + URLS[:10])

    assert result["changed"] is True
    assert result["requests"] == 3
    assert [len(p["files"]) for p in cf.purges] == [30, 30, 15]
    sent = [url for p in cf.purges for url in p["files"]]
    assert sent == URLS
    assert result["purged_files"] == URLS


def test_batch_size_option(cf):
    result = run(cf, files=URLS[:10], batch_size=4)
    assert [len(p["files"]) for p in cf.purges] == [4, 4, 2]
    assert result["requests"] == 3


def test_a_batch_over_the_api_limit_is_refused_by_the_api(cf):
    result = run(cf, files=URLS[:40], batch_size=40)
    assert result["failed"] is True
    assert "HTTP 400" in result["msg"] and "exceeds 30" in result["msg"]
    assert cf.purges == []


def test_prefixes_lose_their_scheme_and_go_in_their_own_calls(cf):
    result = run(cf, files=URLS[:2],
                 prefixes=["https://www.example.com/static/", "www.example.com/blog/"])
    assert result["changed"] is True
    assert cf.purges[0]["files"] == URLS[:2]
    assert cf.purges[1]["prefixes"] == ["www.example.com/static/", "www.example.com/blog/"]
    assert all(len(p) == 2 for p in cf.purges)  # zone_id plus exactly one kind
    assert result["purged_prefixes"] == ["www.example.com/static/", "www.example.com/blog/"]


def test_purge_everything(cf):
    result = run(cf, purge_everything=True)
    assert result["changed"] is True
    assert result["purged_everything"] is True
    assert cf.purges == [{"zone_id": cf.zone, "purge_everything": True}]


def test_nothing_to_purge_is_not_a_change_and_calls_nothing(cf):
    result = run(cf, files=[], prefixes=[])
    assert result["changed"] is False
    assert result["requests"] == 0
    assert cf.calls == []


def test_check_mode_purges_nothing(cf):
    result = run(cf, check_mode=True, files=URLS)
    assert result["changed"] is True
    assert result["requests"] == 3
    assert cf.purges == []
    assert cf.writes() == []


def test_partial_failure_reports_what_was_purged(cf):
    cf.inject(500, times=10, method="POST", skip=1)
    result = run(cf, files=URLS, retries=1)
    assert result["failed"] is True
    assert "purge batch 2 of 3" in result["msg"]
    assert "1 of 3 purge calls had succeeded" in result["msg"]
    assert result["purged_files"] == URLS[:30]
    assert len(cf.purges) == 1


def test_purge_rate_limit_with_short_retry_after_is_waited_out(cf):
    cf.inject(429, times=1, method="POST", skip=1, retry_after=1)
    result = run(cf, files=URLS)
    assert result.get("failed") is not True, result
    assert [c["status"] for c in cf.writes()] == [200, 429, 200, 200]
    assert len(cf.purges) == 3


def test_purge_rate_limit_beyond_max_wait_fails(cf):
    cf.inject(429, times=100, method="POST", retry_after=120)
    result = run(cf, files=URLS[:3], rate_limit_max_wait=60)
    assert result["failed"] is True
    assert result["status_code"] == 429
    assert "Retry-After 120 s" in result["msg"]
    assert len(cf.writes()) == 1


def test_missing_purge_permission_is_named(cf):
    cf.add_token("no-purge", {"zone:read"})
    result = run(cf, api_token="no-purge", files=URLS[:1])
    assert result["failed"] is True
    assert "Zone > Cache Purge > Purge" in result["msg"]


@pytest.mark.parametrize("kwargs, message", [
    ({"files": ["/static/app.css"]}, "absolute http(s) URLs"),
    ({"prefixes": ["/static/"]}, "host followed by a path"),
    ({"prefixes": ["www.example.com/?a=1"]}, "without query"),
    ({"files": URLS[:1], "purge_everything": True}, "cannot be combined"),
    ({"files": URLS[:1], "batch_size": 0}, "batch_size must be between"),
])
def test_invalid_input_fails_before_any_call(cf, kwargs, message):
    result = run(cf, **kwargs)
    assert result["failed"] is True
    assert message in result["msg"]
    assert cf.calls == []
