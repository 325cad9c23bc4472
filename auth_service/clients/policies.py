"""Pure decisions about service accounts: which scopes a token gets, what a client may be given, the errors."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from common.contracts import oauth
from common.contracts.errors import ServiceError, ValidationFailed

NAME_MAX_LENGTH = 100
# Longer than any client id we issue: refused as unknown without a database lookup.
CLIENT_ID_MAX_LENGTH = 64
SCOPE_MAX_LENGTH = 1024


def new_client_id() -> str:
    """128 random bits in hex: unchanged by the form encoding HTTP Basic credentials go through (RFC 6749 §2.3.1), and
    never starting with "-", which a command line would read as an option (`rotate_client_secret CLIENT_ID`)."""
    return secrets.token_hex(16)


def invalid_client(message: str = "Client authentication failed") -> ServiceError:
    return ServiceError(message, status=401, code=oauth.INVALID_CLIENT)


def invalid_scope(message: str) -> ServiceError:
    return ServiceError(message, status=400, code=oauth.INVALID_SCOPE)


def scopes_checked(scopes: Iterable[str]) -> list[str]:
    """The scopes a client is given: known ones, at least one, each once, sorted."""
    given = sorted(set(scopes))
    unknown = [scope for scope in given if scope not in oauth.SCOPES]
    if unknown:
        raise ValidationFailed(
            f"Unknown scope: {', '.join(unknown)} (known: {', '.join(oauth.SCOPES)})",
            fields={"scopes": [f"unknown scope {scope}" for scope in unknown]},
        )
    if not given:
        raise ValidationFailed("A client needs at least one scope", fields={"scopes": ["at least one is required"]})
    return given


def name_checked(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise ValidationFailed(
            f"The name must be 1 to {NAME_MAX_LENGTH} characters long",
            fields={"name": [f"1 to {NAME_MAX_LENGTH} characters"]},
        )
    return name


def scopes_granted(requested: str | None, allowed: Sequence[str]) -> list[str]:
    """RFC 6749 §3.3: the requested scopes (space-delimited), all of which the client must hold; none requested
    means every scope it holds. A scope the client does not hold is an error, not silently dropped."""
    if requested is None or not requested.strip():
        granted = sorted(scope for scope in set(allowed) if scope in oauth.SCOPES)
    else:
        if len(requested) > SCOPE_MAX_LENGTH:
            raise invalid_scope("The requested scope is too long")
        wanted = set(requested.split(" "))
        if "" in wanted:
            raise invalid_scope("Scopes are separated by single spaces")
        refused = sorted(scope for scope in wanted if scope not in allowed or scope not in oauth.SCOPES)
        if refused:
            raise invalid_scope(f"Scope not allowed for this client: {' '.join(refused)}")
        granted = sorted(wanted)
    if not granted:
        raise invalid_scope("This client holds no scope")
    return granted
