"""JWT encoding: RS256 access tokens (SPEC §3) and HS256 refresh tokens, with algorithms pinned on decode."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from auth_service.accounts.mfa_tokens import AMR_PASSWORD

ACCESS_TYP = "at+jwt"
REFRESH_TYP = "refresh"
# A refresh token is ~300 bytes; anything far larger is garbage and is refused before any parsing work.
MAX_REFRESH_TOKEN_LENGTH = 2048
_REFRESH_ALGORITHM = "HS256"
DEFAULT_AMR = (AMR_PASSWORD,)
_REFRESH_REQUIRED = ["exp", "iat", "iss", "sub", "sid", "check", "typ"]


class InvalidRefreshToken(Exception):
    """The refresh token is malformed, tampered with, expired or of the wrong kind (the reason is not shown)."""


@dataclass(frozen=True)
class RefreshClaims:
    user_id: str
    sid: str
    check: str
    expires_at: int
    amr: tuple[str, ...] = ("pwd",)


def access_token_encode(
    *,
    kid: str,
    key: rsa.RSAPrivateKey,
    user_id: str,
    sid: str,
    roles: Sequence[str],
    now: int,
    epoch: int = 0,
    amr: Sequence[str] = DEFAULT_AMR,
) -> str:
    """`ep` is the user's credential epoch when the token was issued: the gateway refuses a token whose epoch is
    below its session's `tmin` (a role change, for one, makes the tokens issued before it useless at once).
    `amr` (RFC 8176) says how the session's login was made: ["pwd"], ["pwd", "otp"]..."""
    claims = {"sub": user_id, "sid": sid, "roles": list(roles), "ep": epoch, "amr": list(amr)}
    return _access_token_sign(kid=kid, key=key, now=now, claims=claims)


def client_access_token_encode(
    *, kid: str, key: rsa.RSAPrivateKey, client_id: str, scopes: Sequence[str], epoch: int, now: int
) -> str:
    """A service account's token (client credentials): no session and no roles, its scopes instead; `cep` is the
    client's epoch, which the gateway compares with the client's liveness marker (a rotation or disabling ends it)."""
    claims = {"sub": client_id, "client_id": client_id, "scope": " ".join(scopes), "cep": epoch}
    return _access_token_sign(kid=kid, key=key, now=now, claims=claims)


def _access_token_sign(*, kid: str, key: rsa.RSAPrivateKey, now: int, claims: dict[str, Any]) -> str:
    """An access token (a user's or a service account's): `claims` between the issuer and audience and a fresh id,
    issue time and expiry, signed with the key `kid` names."""
    registered = {"iss": settings.JWT_ISSUER, "aud": settings.JWT_AUDIENCE}
    expiry = {"jti": uuid.uuid4().hex, "iat": now, "exp": now + int(settings.ACCESS_TOKEN_TTL_SECONDS)}
    return jwt.encode(
        {**registered, **claims, **expiry}, key, algorithm="RS256", headers={"kid": kid, "typ": ACCESS_TYP}
    )


def refresh_token_encode(
    *, user_id: str, sid: str, check: str, expires_at: int, now: int, amr: Sequence[str] = DEFAULT_AMR
) -> str:
    # The login's `amr` rides in the refresh token, so every access token of the session carries it.
    claims = {
        "iss": settings.JWT_ISSUER,
        "sub": user_id,
        "sid": sid,
        "check": check,
        "typ": REFRESH_TYP,
        "amr": list(amr),
        "iat": now,
        "exp": expires_at,
    }
    return jwt.encode(claims, settings.REFRESH_TOKEN_SECRET, algorithm=_REFRESH_ALGORITHM)


def refresh_token_decode(token: str) -> RefreshClaims:
    """Verify signature (HS256 only: never "none", never an RSA key used as an HMAC secret), expiry and shape."""
    if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise InvalidRefreshToken
    try:
        claims = jwt.decode(
            token,
            settings.REFRESH_TOKEN_SECRET,
            algorithms=[_REFRESH_ALGORITHM],
            issuer=settings.JWT_ISSUER,
            options={"require": _REFRESH_REQUIRED},
        )
    except jwt.PyJWTError as exc:
        raise InvalidRefreshToken from exc
    values = (claims.get("sub"), claims.get("sid"), claims.get("check"))
    if claims.get("typ") != REFRESH_TYP or not all(isinstance(v, str) and v for v in values):
        raise InvalidRefreshToken
    amr = claims.get("amr", DEFAULT_AMR)  # tokens issued before `amr` existed were password logins
    if not isinstance(amr, list | tuple) or not all(isinstance(item, str) for item in amr):
        raise InvalidRefreshToken
    return RefreshClaims(
        user_id=claims["sub"],
        sid=claims["sid"],
        check=claims["check"],
        expires_at=int(claims["exp"]),
        amr=tuple(amr),
    )
