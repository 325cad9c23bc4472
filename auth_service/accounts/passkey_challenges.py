"""WebAuthn challenges, kept server-side in Redis: short-lived and single use.

A challenge is 32 random bytes handed out with the ceremony's options. Redis keeps, under the SHA-256 of the
challenge, what the ceremony was for (registration by which user, or a login). The browser sends the challenge back
inside the signed client data; verification takes the entry out atomically (GETDEL) before anything is checked, so
a response can be verified once, whatever the outcome, and a challenge expires on its own after
WEBAUTHN_CHALLENGE_TTL_SECONDS.
"""

from __future__ import annotations

import hashlib
import json
import secrets

from django.conf import settings
from django_redis import get_redis_connection

_PREFIX = "authsvc:webauthn-challenge:"
CHALLENGE_BYTES = 32
PURPOSE_REGISTRATION = "registration"
PURPOSE_LOGIN = "login"


def _key(purpose: str, challenge: bytes) -> str:
    return f"{_PREFIX}{purpose}:{hashlib.sha256(challenge).hexdigest()}"


def challenge_issue(*, purpose: str, user_id: str | None = None) -> bytes:
    """A fresh challenge for a ceremony of `purpose` (bound to `user_id` when given)."""
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    state = json.dumps({"uid": user_id})
    ttl = int(settings.WEBAUTHN_CHALLENGE_TTL_SECONDS)
    get_redis_connection("default").set(_key(purpose, challenge), state, ex=ttl)
    return challenge


def challenge_consume(*, purpose: str, challenge: bytes) -> tuple[bool, str | None]:
    """Take the challenge out (GETDEL): whether it was live, and the user it was issued to."""
    if not challenge or len(challenge) > 1024:
        return False, None
    raw = get_redis_connection("default").getdel(_key(purpose, challenge))
    if raw is None:
        return False, None
    uid = json.loads(raw).get("uid")
    return True, str(uid) if uid else None
