"""Django REST framework authentication with authmesh access tokens (`Authorization: Bearer <token>`).

    # settings.py
    AUTHMESH_DISCOVERY_URL = "https://auth.example.com/.well-known/openid-configuration"
    AUTHMESH_AUDIENCE = "authmesh-api"
    REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["authmesh_client.drf.AuthmeshTokenAuthentication"]}

`request.user` is then an `AuthmeshUser` (its `id` is the token's `sub`: a user id, or a service account's
client id) and `request.auth` the verified claims.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from authmesh_client.verifier import InvalidToken, KeysUnavailable, TokenVerifier


@dataclass(frozen=True)
class AuthmeshUser:
    """The caller a verified token names. Not a database user: a service keeps its own records by `id`."""

    id: str
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None  # set for a service account's token
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    is_authenticated = True
    is_anonymous = False

    @property
    def is_service(self) -> bool:
        return self.client_id is not None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> AuthmeshUser:
        roles = claims.get("roles")
        scope = claims.get("scope")
        client_id = claims.get("client_id")
        return cls(
            id=str(claims["sub"]),
            roles=tuple(str(role) for role in roles) if isinstance(roles, list) else (),
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            client_id=client_id if isinstance(client_id, str) else None,
            claims=claims,
        )


class KeysUnavailableError(exceptions.APIException):
    status_code = 503
    default_detail = "Signing keys are unavailable"
    default_code = "keys_unavailable"


_verifier: TokenVerifier | None = None
_verifier_lock = threading.Lock()


def get_verifier() -> TokenVerifier:
    """The process's verifier, made from AUTHMESH_DISCOVERY_URL and AUTHMESH_AUDIENCE on first use."""
    global _verifier
    if _verifier is None:
        with _verifier_lock:
            if _verifier is None:
                _verifier = TokenVerifier(settings.AUTHMESH_DISCOVERY_URL, audience=settings.AUTHMESH_AUDIENCE)
    return _verifier


@receiver(setting_changed)
def _forget_verifier(*, setting: str, **kwargs: Any) -> None:
    global _verifier
    if setting in ("AUTHMESH_DISCOVERY_URL", "AUTHMESH_AUDIENCE"):
        _verifier = None


class AuthmeshTokenAuthentication(BaseAuthentication):
    """A bearer access token from authmesh: no header, None (other authenticators may try); a bad token, 401."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[AuthmeshUser, dict[str, Any]] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token") from exc
        try:
            claims = get_verifier().verify(token)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed("Invalid or expired token") from exc
        except KeysUnavailable as exc:
            raise KeysUnavailableError() from exc
        return AuthmeshUser.from_claims(claims), claims

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
