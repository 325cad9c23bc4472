"""The keyed hash under which the security log keeps an identifier given for an account that does not exist."""

from __future__ import annotations

from django.utils.crypto import salted_hmac

_IDENTIFIER_SALT = "authmesh.audit.identifier"


def identifier_digest(identifier: str) -> str:
    """Keyed (SECRET_KEY) hash of an e-mail or username: a plain hash of a guessable address would reveal it."""
    return salted_hmac(_IDENTIFIER_SALT, identifier.strip().lower(), algorithm="sha256").hexdigest()
