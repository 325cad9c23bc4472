"""Per-account failed-login counter in Redis: a fixed window, so a lockout always ends on its own."""

from __future__ import annotations

from django.conf import settings
from django_redis import get_redis_connection

from auth_service.accounts.crypto import token_digest

_PREFIX = "authsvc:login-failures:"


def login_failure_key(*, user_id: str | None, slug: str) -> str:
    # An existing account is counted by id (its e-mail and username share one budget). An unknown slug gets
    # its own counter and the same limit, so a 429 does not reveal whether the account exists.
    return f"{_PREFIX}{user_id}" if user_id else f"{_PREFIX}slug:{token_digest(slug.strip().lower())}"


def login_retry_after(key: str) -> int | None:
    """Seconds until the window ends if the account is over its failure budget, else None."""
    r = get_redis_connection("default")
    pipe = r.pipeline(transaction=False)
    pipe.get(key)
    pipe.ttl(key)
    count, ttl = pipe.execute()
    if count is None or int(count) < int(settings.LOGIN_FAILURE_LIMIT):
        return None
    return max(1, int(ttl)) if ttl and int(ttl) > 0 else 1


# The window starts at the first failure and is never extended, so it always expires. A script rather than
# EXPIRE NX, which needs Redis 7; this works on every Redis from 2.6 on.
_RECORD_FAILURE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


def login_failure_record(key: str) -> None:
    r = get_redis_connection("default")
    r.eval(_RECORD_FAILURE, 1, key, int(settings.LOGIN_FAILURE_WINDOW_SECONDS))


def login_failures_reset(key: str) -> None:
    get_redis_connection("default").delete(key)
