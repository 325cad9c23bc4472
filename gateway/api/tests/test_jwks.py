"""The JWKS cache: one fetch at a time, at most one per interval for unknown kids, last good set kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jwt
import pytest

from common.contracts.errors import ServiceUnavailable
from gateway.api.jwks import JwksCache, KeySetUnavailable, parse_key_set
from gateway.api.tests.clock import ManualClock
from gateway.api.tests.tokens import Signer, new_rsa_key, public_jwk

T = TypeVar("T")


class FakeFetch:
    """Returns the current document; counts calls; can fail or be slow."""

    def __init__(self, *keys: dict[str, Any], delay: float = 0.0) -> None:
        self.document: dict[str, Any] = {"keys": list(keys)}
        self.calls = 0
        self.fail = False
        self.delay = delay

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise ServiceUnavailable("No service is answering auth.jwks.get")
        return self.document


@pytest.fixture(scope="module")
def keys() -> tuple[Signer, Signer]:
    return Signer(), Signer()


def primed(signer: Signer) -> tuple[JwksCache, FakeFetch, ManualClock]:
    """A cache (ttl 300 s, refetch interval 30 s) on a manual clock that has fetched a set holding `signer`'s key."""
    clock = ManualClock()
    fetch = FakeFetch(signer.jwk())
    cache = JwksCache(fetch=fetch, ttl=300, refetch_interval=30, clock=clock)
    cache.key(signer.kid)
    return cache, fetch, clock


def concurrently(count: int, call: Callable[[], T]) -> list[T]:
    """`call` from `count` threads released at once; their results."""
    results: list[T] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        results.append(call())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    return results


def test_known_kid_is_served_from_cache_without_refetching(keys: tuple[Signer, Signer]) -> None:
    first, _ = keys
    cache, fetch, _ = primed(first)
    assert cache.key(first.kid) is not None
    assert cache.key(first.kid) is not None
    assert fetch.calls == 1


def test_whole_set_is_refetched_after_ttl(keys: tuple[Signer, Signer]) -> None:
    first, _ = keys
    cache, fetch, clock = primed(first)
    clock.now += 299
    cache.key(first.kid)
    assert fetch.calls == 1
    clock.now += 1
    cache.key(first.kid)
    assert fetch.calls == 2


def test_unknown_kid_refetches_at_most_once_per_interval(keys: tuple[Signer, Signer]) -> None:
    first, second = keys
    cache, fetch, clock = primed(first)
    clock.now += 30
    for _ in range(50):
        assert cache.key("forged-kid") is None
    assert fetch.calls == 2  # the initial fetch and one refetch for the unknown kid
    # A key published after that refetch is picked up once the interval has passed.
    fetch.document = {"keys": [first.jwk(), second.jwk()]}
    clock.now += 29
    assert cache.key(second.kid) is None
    assert fetch.calls == 2
    clock.now += 1
    assert cache.key(second.kid) is not None
    assert fetch.calls == 3


def test_concurrent_callers_share_one_fetch(keys: tuple[Signer, Signer]) -> None:
    first, _ = keys
    fetch = FakeFetch(first.jwk(), delay=0.2)
    cache = JwksCache(fetch=fetch, ttl=300, refetch_interval=30)
    results = concurrently(20, lambda: cache.key(first.kid))
    assert fetch.calls == 1
    assert len(results) == 20
    assert all(result is not None for result in results)


def test_concurrent_unknown_kids_share_one_refetch(keys: tuple[Signer, Signer]) -> None:
    first, second = keys
    cache, fetch, clock = primed(first)
    fetch.document = {"keys": [first.jwk(), second.jwk()]}
    fetch.delay = 0.2
    clock.now += 60
    results = concurrently(10, lambda: cache.key(second.kid))
    assert fetch.calls == 2
    assert all(result is not None for result in results)


def test_last_good_set_is_kept_when_the_auth_service_is_down(keys: tuple[Signer, Signer]) -> None:
    first, _ = keys
    cache, fetch, clock = primed(first)
    fetch.fail = True
    clock.now += 301
    assert cache.key(first.kid) is not None
    assert fetch.calls == 2
    # The failure is not retried on every request: the next attempt waits for the interval.
    clock.now += 10
    assert cache.key(first.kid) is not None
    assert fetch.calls == 2
    clock.now += 20
    fetch.fail = False
    cache.key(first.kid)
    assert fetch.calls == 3


def test_no_key_set_at_all_is_503_not_401() -> None:
    fetch = FakeFetch()
    fetch.fail = True
    cache = JwksCache(fetch=fetch, ttl=300, refetch_interval=30, clock=ManualClock())
    with pytest.raises(KeySetUnavailable) as info:
        cache.key("any")
    assert info.value.status == 503


def test_document_publishes_only_public_members_of_rs256_signing_keys() -> None:
    good = new_rsa_key()
    # A whole private JWK published by mistake: its key is usable, its private members are never republished.
    private_jwk = {
        **jwt.algorithms.RSAAlgorithm.to_jwk(good, as_dict=True),
        "kid": "good",
        "use": "sig",
        "alg": "RS256",
    }
    assert "d" in private_jwk
    weak = public_jwk(new_rsa_key(1024).public_key(), "weak")
    encryption = {**public_jwk(new_rsa_key().public_key(), "enc"), "use": "enc"}
    other_alg = {**public_jwk(new_rsa_key().public_key(), "ps"), "alg": "PS256"}
    symmetric = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
    keys, document = parse_key_set({"keys": [private_jwk, weak, encryption, other_alg, symmetric, "junk", {}]})
    assert list(keys) == ["good"]
    assert document == {"keys": [{name: private_jwk[name] for name in ("kty", "kid", "use", "alg", "n", "e")}]}


def test_malformed_document_keeps_the_last_good_set(keys: tuple[Signer, Signer]) -> None:
    first, _ = keys
    cache, fetch, clock = primed(first)
    fetch.document = {"nope": True}
    clock.now += 301
    assert cache.key(first.kid) is not None
    fetch.document = {"keys": []}
    clock.now += 301
    assert cache.key(first.kid) is not None
    assert cache.document()["keys"][0]["kid"] == first.kid
