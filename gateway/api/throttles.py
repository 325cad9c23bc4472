"""Fixed-window throttles in Redis, per client IP and per account, for the public identity routes.

One pipelined round trip per request counts every key that applies. A client is its IPv4 address or its IPv6 /64.
The per-account bucket of a scope can count the account as a whole (`<scope>.account`) or the account as seen from
one client (`<scope>.account-source`): login uses the latter, so a stranger's requests for an account never spend
the owner's budget; the auth service keeps the account's own failure budget behind it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from common.throttling import Bucket, Rate, bucket_for, count_hits, parse_rate, throttle_source
from gateway.api.forwarding import client_ip

KEY_PREFIX = "gw:thr"

__all__ = ["KEY_PREFIX", "Bucket", "IdentityThrottle", "Rate", "buckets_for", "count_hits", "parse_rate"]


def buckets_for(scope: str, identities: dict[str, str], *, now: float) -> list[Bucket]:
    """The counters a request of `scope` increments: one per kind (ip, account, ...) with an identity and a rate."""
    rates: dict[str, str] = settings.THROTTLE_RATES
    buckets: list[Bucket] = []
    for kind, identity in identities.items():
        text = rates.get(f"{scope}.{kind}")
        if text and identity:
            buckets.append(bucket_for(f"{KEY_PREFIX}:{scope}:{kind}", identity, parse_rate(text), now=now))
    return buckets


class IdentityThrottle(BaseThrottle):
    """Throttles `view.throttle_scope` per client IP and per account (`view.throttle_account_field` of the body)."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        scope = getattr(view, "throttle_scope", None)
        # Only requests the view actually serves count (a GET on /api/login is a 405, not a login attempt).
        if not scope or request.method == "OPTIONS" or not hasattr(view, (request.method or "").lower()):
            return True
        source = throttle_source(client_ip(request))
        account = _account(request, getattr(view, "throttle_account_field", None))
        identities = {"ip": source, "account": account, "account-source": f"{account}\n{source}" if account else ""}
        self._wait = count_hits(buckets_for(scope, identities, now=time.time()))
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


def _account(request: Request, field: str | Callable[[Request], str] | None) -> str:
    if not field:
        return ""
    if callable(field):
        value: Any = field(request)
    else:
        data = request.data
        value = data.get(field) if isinstance(data, Mapping) else None
    # Case and surrounding blanks do not make a new account (nor a new bucket).
    return value.strip().lower() if isinstance(value, str) else ""
