"""Secrets the auth service keeps (the signing keys' private halves) are stored encrypted with a key-encryption key.

KEY_ENCRYPTION_KEYS lists Fernet keys (AES-128-CBC + HMAC-SHA256, from `cryptography`), newest first: the first
encrypts, every one decrypts. Rotating it: put a new key first, run `manage_auth.py reencrypt_secrets` (every stored
secret is re-encrypted under the new key), then drop the old one. A key that cannot decrypt what is stored is a
configuration error, said at start-up (`secrets_check`), never a 500 at the first login.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Marks a sealed value, so a plaintext one (written before encryption at rest) is told apart and refused.
SEALED_PREFIX = "kek1:"


class KeyEncryptionError(ImproperlyConfigured):
    """KEY_ENCRYPTION_KEYS is missing, malformed, or cannot decrypt a stored secret."""


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise KeyEncryptionError("KEY_ENCRYPTION_KEYS (or KEY_ENCRYPTION_KEYS_FILE) must name at least one key.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise KeyEncryptionError(
            "KEY_ENCRYPTION_KEYS must be Fernet keys (url-safe base64 of 32 bytes), comma-separated, newest first; "
            'make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        ) from exc


def cipher() -> MultiFernet:
    return _cipher(tuple(settings.KEY_ENCRYPTION_KEYS))


def seal(plaintext: str) -> str:
    """Encrypt a secret under the first key-encryption key."""
    return SEALED_PREFIX + cipher().encrypt(plaintext.encode()).decode()


def unseal(stored: str, *, what: str) -> str:
    """Decrypt a stored secret (`what` names it in the error: never the secret itself)."""
    if not stored.startswith(SEALED_PREFIX):
        raise KeyEncryptionError(f"{what} is not encrypted at rest: run `manage_auth.py migrate`.")
    try:
        return cipher().decrypt(stored[len(SEALED_PREFIX) :].encode()).decode()
    except InvalidToken:
        raise KeyEncryptionError(
            f"{what} cannot be decrypted with KEY_ENCRYPTION_KEYS: the key-encryption key is wrong or was dropped "
            "before `manage_auth.py reencrypt_secrets` ran."
        ) from None


def reseal(stored: str, *, what: str) -> str:
    """The same secret encrypted under the first key (rotation); refuses one no configured key can decrypt."""
    return seal(unseal(stored, what=what))
