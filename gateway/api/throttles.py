"""Fixed-window throttles in Redis, per client IP and per account, for the public identity routes.

One pipelined round trip per request counts every key that applies. Windows are aligned to the clock, so a
burst at a window's edge can reach twice the rate for a moment; the limits are sized with that in mind, and
nothing is ever locked for longer than one window.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from common.contracts.errors import ServiceUnavailable
from gateway.api.forwarding import client_ip

log = logging.getLogger(__name__)

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\w*\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KEY_PREFIX = "gw:thr"


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int


@lru_cache(maxsize=64)
def parse_rate(text: str) -> Rate:
    """'300/10m' → 300 per 600 s; '5/s', '20/2h', '100/day' also work."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"bad throttle rate {text!r}; expected '<limit>/<count><s|m|h|d>'")
    limit, count, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if count <= 0:
        raise ValueError(f"bad throttle rate {text!r}: empty window")
    return Rate(limit=limit, window=count * _UNIT_SECONDS[unit])


def _digest(value: str) -> str:
    # Keys carry no e-mail address or token in clear.
    return hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Bucket:
    key: str
    rate: Rate
    retry_after: int


def buckets_for(scope: str, identities: dict[str, str], *, now: float) -> list[Bucket]:
    """The counters a request of `scope` increments: one per kind (ip, account) that has an identity and a rate."""
    rates: dict[str, str] = settings.THROTTLE_RATES
    buckets: list[Bucket] = []
    for kind, identity in identities.items():
        text = rates.get(f"{scope}.{kind}")
        if not text or not identity:
            continue
        rate = parse_rate(text)
        window_index, elapsed = divmod(int(now), rate.window)
        buckets.append(
            Bucket(
                key=f"{KEY_PREFIX}:{scope}:{kind}:{_digest(identity)}:{window_index}",
                rate=rate,
                retry_after=rate.window - elapsed,
            )
        )
    return buckets


def count_hits(buckets: list[Bucket]) -> int | None:
    """Count this request in every bucket; the seconds to wait if any is over its limit, else None."""
    if not buckets:
        return None
    from django_redis import get_redis_connection

    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        for bucket in buckets:
            pipe.incr(bucket.key)
            pipe.expire(bucket.key, bucket.retry_after + 1)
        results = pipe.execute()
    except RedisError as exc:
        # Fail closed: an outage must not turn into unlimited password guessing.
        log.error("throttle store unavailable", extra={"error": type(exc).__name__})
        raise ServiceUnavailable("Throttle store unavailable") from exc
    waits = [
        bucket.retry_after for bucket, hits in zip(buckets, results[::2], strict=True) if int(hits) > bucket.rate.limit
    ]
    return max(waits) if waits else None


class IdentityThrottle(BaseThrottle):
    """Throttles `view.throttle_scope` per client IP and per account (`view.throttle_account_field` of the body)."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        scope = getattr(view, "throttle_scope", None)
        # Only requests the view actually serves count (a GET on /api/login is a 405, not a login attempt).
        if not scope or request.method == "OPTIONS" or not hasattr(view, (request.method or "").lower()):
            return True
        identities = {
            "ip": client_ip(request),
            "account": _account(request, getattr(view, "throttle_account_field", None)),
        }
        self._wait = count_hits(buckets_for(scope, identities, now=time.time()))
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


def _account(request: Request, field: str | None) -> str:
    if not field:
        return ""
    data = request.data
    value = data.get(field) if isinstance(data, dict) else None
    # Case and surrounding blanks do not make a new account (nor a new bucket).
    return value.strip().lower() if isinstance(value, str) else ""
