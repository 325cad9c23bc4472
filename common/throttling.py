"""Fixed-window request counters in Redis, shared by the gateway's throttles and the admin consoles' login limit.

Windows are aligned to the clock, so a burst at a window's edge can reach twice the rate for a moment; the limits
are sized with that in mind, and nothing is ever locked for longer than one window.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from redis.exceptions import RedisError

from common.contracts.errors import ServiceUnavailable

log = logging.getLogger(__name__)

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\w*\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# An IPv6 subscriber is routed a /64 (or more): counting each of its 2**64 addresses apart would give one client
# endless fresh buckets.
IPV6_SOURCE_PREFIX = 64


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


def digest(value: str) -> str:
    # Keys carry no e-mail address, IP or token in clear.
    return hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


def throttle_source(ip: str | None) -> str:
    """What a throttle counts as one client: an IPv4 address, or the /64 network of an IPv6 one."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/{IPV6_SOURCE_PREFIX}", strict=False))
    return str(address)


@dataclass(frozen=True)
class Bucket:
    key: str
    rate: Rate
    retry_after: int


def bucket_for(prefix: str, identity: str, rate: Rate, *, now: float) -> Bucket:
    """The counter of `identity` (kept only as a hash) in the window of `rate` that contains `now`."""
    window_index, elapsed = divmod(int(now), rate.window)
    return Bucket(key=f"{prefix}:{digest(identity)}:{window_index}", rate=rate, retry_after=rate.window - elapsed)


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
