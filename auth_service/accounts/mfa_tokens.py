"""The login's second step: an `mfaToken` handed out after a correct password, kept in Redis, single use.

A token is 256 random bits; Redis holds only its SHA-256 (whoever reads Redis cannot finish a login with it) and the
state of the pending login: the user, the credential epoch read when the password was accepted (a reset, a role
change or a deactivation in between makes the login open nothing), the client, the methods the user may finish with,
the factors already proven (`amr`) and the wrong attempts so far.

Every use takes the token out of Redis atomically (GETDEL) before any check runs, so two requests can never both
pass with one token, and parallel guesses cannot share one budget of attempts: a request that finds no token is
refused. A wrong code puts the token back (`mfa_token_failure`) with one attempt fewer, until none are left; a check
that could not be made (a throttled source) puts it back unchanged (`mfa_token_restore`). Used by TOTP and recovery
codes (services/mfa.py) and by passkeys as a second factor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django_redis import get_redis_connection

from auth_service.accounts.crypto import new_token, token_digest
from common.contracts.mfa import METHOD_PASSKEY as METHOD_PASSKEY
from common.contracts.mfa import METHOD_RECOVERY_CODE as METHOD_RECOVERY_CODE
from common.contracts.mfa import METHOD_TOTP as METHOD_TOTP

_PREFIX = "authsvc:mfa-token:"
# A token is ~43 characters; anything far longer is garbage, refused before hashing.
MAX_TOKEN_LENGTH = 128

# RFC 8176 authentication method references carried in the access token's `amr`.
AMR_PASSWORD = "pwd"  # noqa: S105 - a method name, not a secret
AMR_OTP = "otp"
AMR_HARDWARE_KEY = "hwk"


@dataclass(frozen=True)
class MfaTokenState:
    """A pending login: who, under which credential epoch, from which client, and how it may be finished."""

    user_id: str
    epoch: int
    ip: str
    user_agent: str
    methods: tuple[str, ...]
    expires_at: int
    failures: int = 0
    amr: tuple[str, ...] = field(default=(AMR_PASSWORD,))

    @property
    def attempts_left(self) -> int:
        return max(int(settings.MFA_TOKEN_MAX_FAILURES) - self.failures, 0)

    def to_json(self) -> str:
        return json.dumps(
            {
                "uid": self.user_id,
                "ep": self.epoch,
                "ip": self.ip,
                "ua": self.user_agent,
                "methods": list(self.methods),
                "exp": self.expires_at,
                "failures": self.failures,
                "amr": list(self.amr),
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> MfaTokenState:
        data = json.loads(raw)
        return cls(
            user_id=str(data["uid"]),
            epoch=int(data["ep"]),
            ip=str(data["ip"]),
            user_agent=str(data["ua"]),
            methods=tuple(data["methods"]),
            expires_at=int(data["exp"]),
            failures=int(data["failures"]),
            amr=tuple(data["amr"]),
        )


def _key(token: str) -> str:
    return f"{_PREFIX}{token_digest(token)}"


def mfa_token_issue(
    *,
    user_id: str,
    epoch: int,
    methods: Sequence[str],
    ip: str | None,
    user_agent: str | None,
    amr: Sequence[str] = (AMR_PASSWORD,),
) -> str:
    """A new token for a user whose first factor (`amr`) was just checked; it lives MFA_TOKEN_TTL_SECONDS."""
    token = new_token()
    state = MfaTokenState(
        user_id=user_id,
        epoch=epoch,
        ip=ip or "",
        user_agent=(user_agent or "")[:200],
        methods=tuple(methods),
        expires_at=int(time.time()) + int(settings.MFA_TOKEN_TTL_SECONDS),
        amr=tuple(amr),
    )
    get_redis_connection("default").set(_key(token), state.to_json(), exat=state.expires_at)
    return token


def mfa_token_consume(token: str) -> MfaTokenState | None:
    """Take the token out of Redis (atomic GETDEL): its state, or None when unknown, used, dead or expired."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    raw = get_redis_connection("default").getdel(_key(token))
    if raw is None:
        return None
    state = MfaTokenState.from_json(raw)
    if state.expires_at <= time.time() or state.attempts_left <= 0:
        return None
    return state


def mfa_token_failure(token: str, state: MfaTokenState) -> int:
    """A wrong code: the consumed token comes back with one attempt fewer (same expiry); the attempts left."""
    counted = MfaTokenState(**{**state.__dict__, "failures": state.failures + 1})
    left = counted.attempts_left
    if left > 0:
        _put_back(token, counted)
    return left


def mfa_token_restore(token: str, state: MfaTokenState) -> None:
    """Nothing was checked (the source is throttled, a service is down): the consumed token comes back as it was."""
    _put_back(token, state)


def _put_back(token: str, state: MfaTokenState) -> None:
    if state.expires_at <= time.time():
        return
    # NX: a token is only ever put back by the request that took it out; nothing else can have created the key.
    get_redis_connection("default").set(_key(token), state.to_json(), exat=state.expires_at, nx=True)
