"""Password hashing: argon2id at OWASP's minimum, with a per-process bound on concurrent hashes."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()
_dummy_encoded: str | None = None


def _hash_slots() -> threading.BoundedSemaphore:
    global _slots
    if _slots is None:
        with _slots_lock:
            if _slots is None:
                _slots = threading.BoundedSemaphore(max(1, int(settings.PASSWORD_HASH_CONCURRENCY)))
    return _slots


@contextmanager
def hash_slot() -> Iterator[None]:
    """Each hash holds 19 MiB for tens of milliseconds: a burst must queue, not exhaust memory and CPU."""
    slots = _hash_slots()
    with slots:
        yield


class Argon2idHasher(Argon2PasswordHasher):
    """Django's argon2 hasher (argon2id, same "argon2" prefix, so existing hashes verify) at m=19 MiB, t=2, p=1."""

    algorithm = "argon2"
    time_cost = 2
    memory_cost = 19456
    parallelism = 1

    def encode(self, password: str, salt: str) -> str:
        with hash_slot():
            return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        with hash_slot():
            return super().verify(password, encoded)


def dummy_verify(password: str) -> None:
    """Spend one real verification when there is no account, so timing does not reveal whether it exists."""
    global _dummy_encoded
    hasher = get_hasher("default")
    if _dummy_encoded is None:
        _dummy_encoded = hasher.encode(secrets.token_urlsafe(24), hasher.salt())
    hasher.verify(password, _dummy_encoded)


def dummy_hash(password: str) -> None:
    """Spend one real hash on a path that does not store it (duplicate sign-up), to match the real path's time."""
    hasher = get_hasher("default")
    hasher.encode(password, hasher.salt())
