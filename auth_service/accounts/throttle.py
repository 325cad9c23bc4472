"""Failure budgets in Redis: logins per account and source, verification codes per account.

Every budget is a fixed window that starts at its first failure and is never extended, so it always ends on its
own. An attempt is reserved (counted) atomically before the password or code is checked, so a burst of parallel
guesses cannot all pass a check that none of them had yet been counted in; a success gives its reservation back.

Logins are counted per account and source (the client's IPv4 address or IPv6 /64): a source that spent its budget
on an account waits, while the owner, from a source without failures, still gets in with the right password. The
account also has a larger budget across all sources; past it (a distributed attack) each source gets one failure per
window instead of the full budget, and a source without failures still gets its try: never a lockout by strangers.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django_redis import get_redis_connection

from auth_service.accounts.crypto import token_digest
from common.throttling import throttle_source

_LOGIN_PREFIX = "authsvc:login-failures:"
_VERIFY_PREFIX = "authsvc:verify-failures:"


def _account(*, user_id: str | None, slug: str) -> str:
    # An existing account is counted by id (its e-mail and username share one budget). An unknown slug gets
    # its own counter and the same limit, so a 429 does not reveal whether the account exists.
    return user_id if user_id else f"slug:{token_digest(slug.strip().lower())}"


@dataclass(frozen=True)
class LoginAttempt:
    """A reserved login attempt: its counters, and the seconds to wait when it was refused (None: go ahead)."""

    source_key: str
    account_key: str
    retry_after: int | None = None


def login_attempt_keys(*, user_id: str | None, slug: str, ip: str | None) -> LoginAttempt:
    account_key = f"{_LOGIN_PREFIX}{_account(user_id=user_id, slug=slug)}"
    return LoginAttempt(source_key=f"{account_key}:src:{token_digest(throttle_source(ip))}", account_key=account_key)


# KEYS: the source's counter, the account's; ARGV: source budget, account budget, window. Returns 0 when the attempt
# is reserved in both, else the seconds until the source's window ends. A script rather than EXPIRE NX (Redis 7).
_LOGIN_RESERVE = """
local source = tonumber(redis.call('GET', KEYS[1]) or '0')
local allowed = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then
  allowed = math.min(allowed, 1)
end
if source >= allowed then
  return math.max(redis.call('TTL', KEYS[1]), 1)
end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 or redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[3])
  end
end
return 0
"""

# A correct password: the source proved itself (its failures are forgiven); the account gets this one attempt back.
_LOGIN_REFUND = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
"""


def login_attempt_reserve(*, user_id: str | None, slug: str, ip: str | None) -> LoginAttempt:
    """Count this attempt as a failure before the password is checked, unless the source is over its budget."""
    attempt = login_attempt_keys(user_id=user_id, slug=slug, ip=ip)
    wait = int(
        get_redis_connection("default").eval(
            _LOGIN_RESERVE,
            2,
            attempt.source_key,
            attempt.account_key,
            int(settings.LOGIN_FAILURE_LIMIT),
            int(settings.LOGIN_ACCOUNT_FAILURE_LIMIT),
            int(settings.LOGIN_FAILURE_WINDOW_SECONDS),
        )
    )
    return LoginAttempt(attempt.source_key, attempt.account_key, retry_after=wait or None)


def login_attempt_refund(attempt: LoginAttempt) -> None:
    """The password was right: give the reservation back and forget the source's earlier failures."""
    get_redis_connection("default").eval(_LOGIN_REFUND, 2, attempt.source_key, attempt.account_key)


# KEYS: the account's counter; ARGV: budget, window. 0 when reserved, else the seconds until the window ends.
_RESERVE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then
  return math.max(redis.call('TTL', KEYS[1]), 1)
end
if redis.call('INCR', KEYS[1]) == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def verification_attempt_key(*, user_id: str | None, email: str) -> str:
    return f"{_VERIFY_PREFIX}{_account(user_id=user_id, slug=email)}"


def verification_attempt_reserve(*, user_id: str | None, email: str) -> int | None:
    """Count a code check against the account's budget, which no reissue of the code resets; the wait if spent."""
    wait = int(
        get_redis_connection("default").eval(
            _RESERVE,
            1,
            verification_attempt_key(user_id=user_id, email=email),
            int(settings.VERIFICATION_FAILURE_LIMIT),
            int(settings.VERIFICATION_FAILURE_WINDOW_SECONDS),
        )
    )
    return wait or None


def verification_attempts_forget(*, user_id: str) -> None:
    """The account is verified: its code budget has nothing left to protect."""
    get_redis_connection("default").delete(verification_attempt_key(user_id=user_id, email=""))
