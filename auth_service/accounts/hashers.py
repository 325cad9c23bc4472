"""Password hashing: argon2id (libsodium, through PyNaCl) at an OWASP minimum, with a per-process bound on hashes.

libsodium's Argon2id is the AVX2-optimised implementation: at the same parameters it costs about 40% less CPU
than the reference one behind argon2-cffi, and like it runs outside the GIL, so a process hashes on every core
its hash slots allow. The parameters come from settings (default m=7 MiB, t=5, p=1, one of OWASP's equivalent
minimum Argon2id configurations). Stored hashes keep Django's `argon2$argon2id$v=19$m=..,t=..,p=..$salt$hash`
form, so hashes of other parameters (the former m=19 MiB, t=2) still verify and are re-hashed at the current
ones on the next successful login (`must_update`, then the caller's setter).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import nacl.exceptions
import nacl.pwhash
from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()
_dummy: tuple[tuple[int, int, int], str] | None = None

# libsodium's Argon2id: 16-byte salt, 32-byte hash, one lane (p=1).
_SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES
_HASH_BYTES = 32


def _hash_slots() -> threading.BoundedSemaphore:
    global _slots
    if _slots is None:
        with _slots_lock:
            if _slots is None:
                _slots = threading.BoundedSemaphore(max(1, int(settings.PASSWORD_HASH_CONCURRENCY)))
    return _slots


@contextmanager
def hash_slot() -> Iterator[None]:
    """Each hash holds its memory cost for milliseconds of CPU: a burst must queue, not exhaust memory and CPU."""
    slots = _hash_slots()
    with slots:
        yield


class Argon2idHasher(Argon2PasswordHasher):
    """Argon2id through libsodium, under Django's "argon2" prefix (so every existing argon2 hash still verifies).

    libsodium draws each new hash's 16-byte salt from its own CSPRNG (crypto_pwhash_str), so the `salt` Django
    passes to `encode` is not used. Hashes it cannot verify itself (argon2i/argon2d varieties) go to argon2-cffi.
    """

    algorithm = "argon2"

    @property
    def time_cost(self) -> int:  # type: ignore[override]
        return int(settings.PASSWORD_ARGON2_TIME_COST)

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return int(settings.PASSWORD_ARGON2_MEMORY_KIB)

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        # libsodium computes a single lane; p=1 is what OWASP's configurations use.
        return 1

    def encode(self, password: str, salt: str) -> str:
        with hash_slot():
            data = nacl.pwhash.argon2id.str(
                password.encode(), opslimit=self.time_cost, memlimit=self.memory_cost * 1024
            )
        return self.algorithm + data.decode("ascii")

    def verify(self, password: str, encoded: str) -> bool:
        algorithm, rest = encoded.split("$", 1)
        if algorithm != self.algorithm:
            return False
        if not rest.startswith("argon2id$"):
            with hash_slot():
                return bool(super().verify(password, encoded))
        with hash_slot():
            try:
                return bool(nacl.pwhash.argon2id.verify(b"$" + rest.encode("ascii"), password.encode()))
            except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, UnicodeEncodeError):
                # A wrong password, or a stored value libsodium cannot parse: both mean "not this password".
                return False

    def must_update(self, encoded: str) -> bool:
        """Re-hash when the variety, version, cost parameters or hash length differ, or the salt is under 16 bytes."""
        decoded = self.decode(encoded)
        params = decoded["params"]
        current = (
            decoded["variety"],
            params.version,
            params.memory_cost,
            params.time_cost,
            params.parallelism,
            params.hash_len,
        )
        wanted = ("argon2id", 19, self.memory_cost, self.time_cost, self.parallelism, _HASH_BYTES)
        # Django decodes the salt as latin-1, one character per byte.
        return current != wanted or len(decoded["salt"]) < _SALT_BYTES


def dummy_verify(password: str) -> None:
    """Spend one real verification when there is no account, so timing does not reveal whether it exists.

    The dummy hash is made at the current parameters (remade if they change), so it costs what a real
    account's verification costs.
    """
    global _dummy
    hasher = get_hasher("default")
    current = (
        int(getattr(hasher, "memory_cost", 0)),
        int(getattr(hasher, "time_cost", 0)),
        int(getattr(hasher, "parallelism", 0)),
    )
    dummy = _dummy
    if dummy is None or dummy[0] != current:
        dummy = (current, hasher.encode(secrets.token_urlsafe(24), hasher.salt()))
        _dummy = dummy
    hasher.verify(password, dummy[1])


def dummy_hash(password: str) -> None:
    """Spend one real hash on a path that does not store it (duplicate sign-up), to match the real path's time."""
    hasher = get_hasher("default")
    hasher.encode(password, hasher.salt())
