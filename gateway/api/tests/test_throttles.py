"""Throttles: rate parsing, per-IP and per-account buckets in Redis, 429 with Retry-After through HTTP."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client, RequestFactory, override_settings

from gateway.api.forwarding import client_ip
from gateway.api.throttles import Rate, buckets_for, count_hits, parse_rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [("5/s", Rate(5, 1)), ("300/10m", Rate(300, 600)), ("20/2h", Rate(20, 7200)), ("100/day", Rate(100, 86400))],
)
def test_parse_rate(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "ten/m", "5", "5/0m", "5/10y"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_development_defaults_allow_the_documented_volumes() -> None:
    from django.conf import settings

    def per_ten_minutes(key: str) -> float:
        rate = parse_rate(settings.THROTTLE_RATES[key])
        return rate.limit * 600 / rate.window

    assert per_ten_minutes("signup.ip") >= 300
    assert per_ten_minutes("login.ip") >= 300
    assert per_ten_minutes("recover-credentials.ip") >= 50


def test_buckets_hash_identities_and_skip_missing_ones() -> None:
    with override_settings(THROTTLE_RATES={"login.ip": "5/1m", "login.account": "3/1m"}):
        buckets = buckets_for("login", {"ip": "10.0.0.1", "account": "ada@example.com"}, now=120.0)
        assert [b.rate for b in buckets] == [Rate(5, 60), Rate(3, 60)]
        assert all("ada" not in b.key and "10.0.0.1" not in b.key for b in buckets)
        assert buckets[0].retry_after == 60
        assert buckets_for("login", {"ip": "10.0.0.1", "account": ""}, now=120.0)[0].rate == Rate(5, 60)
        assert buckets_for("signup", {"ip": "10.0.0.1"}, now=0) == []


def test_count_hits_in_redis_says_how_long_to_wait() -> None:
    with override_settings(THROTTLE_RATES={"test.ip": "2/1m"}):
        buckets = buckets_for("test", {"ip": f"ip-{uuid.uuid4()}"}, now=60 * 16_666_667 + 30.0)
        assert count_hits(buckets) is None
        assert count_hits(buckets) is None
        assert count_hits(buckets) == 30


def login(client: Client, slug: str) -> int:
    # An invalid body (no password) is refused after the throttle counted it: no service needed.
    return client.post("/api/login", data={"slug": slug}, content_type="application/json").status_code


def test_over_the_ip_limit_is_429_with_retry_after() -> None:
    client = Client(REMOTE_ADDR=f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7")
    with override_settings(THROTTLE_RATES={"login.ip": "2/10m"}):
        statuses = [login(client, f"user{n}@example.com") for n in range(3)]
        response = client.post("/api/login", data={"slug": "x"}, content_type="application/json")
    assert statuses == [400, 400, 429]
    assert response.status_code == 429
    body = response.json()
    assert body["statusCode"] == 429
    assert body["error"] == "Too Many Requests"
    assert 1 <= int(response["Retry-After"]) <= 600


def test_per_account_limit_follows_the_account_across_ips() -> None:
    account = f"victim-{uuid.uuid4().hex}@example.com"
    with override_settings(THROTTLE_RATES={"login.account": "2/10m"}):
        statuses = [login(Client(REMOTE_ADDR=f"10.9.8.{n}"), account.upper() if n % 2 else account) for n in range(3)]
        other = login(Client(REMOTE_ADDR="10.9.8.9"), f"other-{uuid.uuid4().hex}@example.com")
    assert statuses == [400, 400, 429]
    assert other == 400


def test_unthrottled_methods_are_not_counted() -> None:
    client = Client(REMOTE_ADDR="10.77.77.77")
    with override_settings(THROTTLE_RATES={"login.ip": "1/10m"}):
        assert client.get("/api/login").status_code == 405
        assert client.get("/api/login").status_code == 405


def test_client_ip_ignores_forwarded_for_unless_proxies_are_trusted() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8")
    assert client_ip(request) == "10.0.0.2"
    with override_settings(TRUSTED_PROXY_HOPS=1):
        assert client_ip(request) == "5.6.7.8"
    with override_settings(TRUSTED_PROXY_HOPS=2):
        assert client_ip(request) == "1.2.3.4"
    with override_settings(TRUSTED_PROXY_HOPS=1):
        spoofed = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-ip")
        assert client_ip(spoofed) == "10.0.0.2"
