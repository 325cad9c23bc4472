"""Signing keys of access tokens: the active key, rotation, import of PEM files, the published set."""

from __future__ import annotations

import logging
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from auth_service.accounts import selectors
from auth_service.accounts.crypto import KeyMaterial, key_material_from_pem, new_rsa_key, private_key
from auth_service.accounts.keyring import reseal, seal, unseal
from auth_service.accounts.models import SigningKey
from auth_service.accounts.services._common import Kind
from auth_service.audit.services import security_event_record
from common.contracts.errors import BadRequest, NotFound

log = logging.getLogger(__name__)

# How long a process keeps signing with the key it last saw as active. Safe because a rotation only retires a
# key (still published) and promotes one that was already published as `next`.
ACTIVE_KEY_CACHE_SECONDS = 30.0
_SIGNING_KEYS_LOCK = zlib.crc32(b"authmesh.accounts.signing-keys")


_active_key_cache: tuple[float, str, rsa.RSAPrivateKey] | None = None


def signing_key_for_signing() -> tuple[str, rsa.RSAPrivateKey]:
    """The active key's kid and parsed private key, cached briefly; creates the first key if there is none."""
    global _active_key_cache
    cached = _active_key_cache
    if cached is not None and cached[0] > time.monotonic():
        return cached[1], cached[2]
    active = selectors.signing_key_active() or signing_key_ensure_active()
    key = private_key(kid=active.kid, private_pem=unseal(active.private_pem, what=f"signing key {active.kid}"))
    _active_key_cache = (time.monotonic() + ACTIVE_KEY_CACHE_SECONDS, active.kid, key)
    return active.kid, key


def signing_key_cache_forget() -> None:
    global _active_key_cache
    _active_key_cache = None


def _lock_signing_keys() -> None:
    # One transaction-scoped advisory lock serialises every key-state change across processes.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SIGNING_KEYS_LOCK])


def _key_create(material: KeyMaterial, *, state: str, now: datetime) -> SigningKey:
    return SigningKey.objects.create(
        kid=material.kid,
        private_pem=seal(material.private_pem),
        public_jwk=material.public_jwk,
        state=state,
        activated_at=now if state == SigningKey.State.ACTIVE else None,
    )


def _ensure_next_key(now: datetime) -> None:
    if not SigningKey.objects.filter(state=SigningKey.State.NEXT).exists():
        _key_create(new_rsa_key(), state=SigningKey.State.NEXT, now=now)


def retired_keys_delete(now: datetime) -> int:
    # A token signed just before retirement (or by a process whose key cache is not yet refreshed) lives one
    # access-token lifetime more; the key stays published for twice that.
    retention = timedelta(seconds=2 * int(settings.ACCESS_TOKEN_TTL_SECONDS) + ACTIVE_KEY_CACHE_SECONDS)
    deleted, _ = SigningKey.objects.filter(state=SigningKey.State.RETIRED, retired_at__lt=now - retention).delete()
    return deleted


def _configured_pem() -> KeyMaterial | None:
    private_path, public_path = settings.SIGNING_KEY_PEM_PRIVATE, settings.SIGNING_KEY_PEM_PUBLIC
    if not private_path:
        return None
    public_pem = Path(public_path).read_text() if public_path else None
    return key_material_from_pem(private_pem=Path(private_path).read_text(), public_pem=public_pem)


def signing_key_ensure_active() -> SigningKey:
    """Create the first active key (from the configured PEM files, if any) and its successor, once across processes."""
    with transaction.atomic():
        _lock_signing_keys()
        active = SigningKey.objects.filter(state=SigningKey.State.ACTIVE).first()
        if active is None:
            now = timezone.now()
            successor = SigningKey.objects.filter(state=SigningKey.State.NEXT).first()
            material = _configured_pem()
            if material is None and successor is not None:
                successor.state = SigningKey.State.ACTIVE
                successor.activated_at = now
                successor.save(update_fields=["state", "activated_at"])
                active = successor
            else:
                active = _key_create(material or new_rsa_key(), state=SigningKey.State.ACTIVE, now=now)
            _ensure_next_key(now)
            security_event_record(kind=Kind.KEY_ROTATED, reason="first_key", detail={"kid": active.kid})
            log.info("signing key activated", extra={"kid": active.kid})
        return active


def signing_key_rotate(*, min_age: timedelta | None = None, agent_id: str | None = None) -> SigningKey:
    """Promote `next` to active, retire the old active, publish a fresh `next`, drop long-retired keys."""
    # With `min_age` (the daily scheduled task) only an active key at least that old is rotated.
    with transaction.atomic():
        _lock_signing_keys()
        now = timezone.now()
        active = SigningKey.objects.filter(state=SigningKey.State.ACTIVE).first()
        if (
            min_age is not None
            and active is not None
            and active.activated_at is not None
            and active.activated_at > now - min_age
        ):
            retired_keys_delete(now)
            return active
        successor = SigningKey.objects.filter(state=SigningKey.State.NEXT).first()
        if active is not None:
            # Demote first: the partial unique index allows one active key at any instant.
            active.state = SigningKey.State.RETIRED
            active.retired_at = now
            active.save(update_fields=["state", "retired_at"])
        if successor is None:
            successor = _key_create(new_rsa_key(), state=SigningKey.State.ACTIVE, now=now)
        else:
            successor.state = SigningKey.State.ACTIVE
            successor.activated_at = now
            successor.save(update_fields=["state", "activated_at"])
        _ensure_next_key(now)
        retired_keys_delete(now)
        transaction.on_commit(signing_key_cache_forget)
        security_event_record(
            kind=Kind.KEY_ROTATED,
            actor_id=agent_id,
            reason="rotated",
            detail={"kid": successor.kid, "retired_kid": active.kid if active else None},
        )
    log.info("signing keys rotated", extra={"kid": successor.kid, "retired_kid": active.kid if active else None})
    return successor


def signing_key_import_pem(*, private_pem: str, public_pem: str | None = None) -> SigningKey:
    """Make a key from PEM files (the original's certs) the active one; importing the same key again changes nothing."""
    try:
        material = key_material_from_pem(private_pem=private_pem, public_pem=public_pem)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    with transaction.atomic():
        _lock_signing_keys()
        now = timezone.now()
        existing = SigningKey.objects.filter(kid=material.kid).first()
        if existing is not None and existing.state == SigningKey.State.ACTIVE:
            return existing
        SigningKey.objects.filter(state=SigningKey.State.ACTIVE).update(state=SigningKey.State.RETIRED, retired_at=now)
        if existing is not None:
            existing.state = SigningKey.State.ACTIVE
            existing.activated_at = now
            existing.retired_at = None
            existing.save(update_fields=["state", "activated_at", "retired_at"])
            imported = existing
        else:
            imported = _key_create(material, state=SigningKey.State.ACTIVE, now=now)
        _ensure_next_key(now)
        transaction.on_commit(signing_key_cache_forget)
        security_event_record(kind=Kind.KEY_ROTATED, reason="imported", detail={"kid": imported.kid})
    log.info("signing key imported", extra={"kid": imported.kid})
    return imported


def jwks_get() -> dict[str, Any]:
    """The published key set; makes sure a key exists, so verifiers can fetch it before the first login."""
    if selectors.signing_key_active() is None:
        signing_key_ensure_active()
    return {"keys": selectors.jwks_keys()}


def signing_key_revoke(*, kid: str, agent_id: str | None = None) -> SigningKey:
    """Delete the key `kid` whatever its state; an active key is first replaced by the next one. Returns the
    active key afterwards. Access tokens it signed stop verifying wherever the key is no longer cached."""
    key = SigningKey.objects.filter(kid=kid).first()
    if key is None:
        raise NotFound("No signing key with this kid")
    if key.state == SigningKey.State.ACTIVE:
        signing_key_rotate(agent_id=agent_id)
    with transaction.atomic():
        _lock_signing_keys()
        # Still active only if a rotation raced this one and promoted it again: impossible (it was retired), but
        # an active key is never deleted here; the next call would rotate it first.
        deleted, _ = SigningKey.objects.filter(kid=kid).exclude(state=SigningKey.State.ACTIVE).delete()
        _ensure_next_key(timezone.now())
        transaction.on_commit(signing_key_cache_forget)
        security_event_record(kind=Kind.KEY_REVOKED, actor_id=agent_id, reason="revoked", detail={"kid": kid})
    log.warning("signing key revoked", extra={"kid": kid, "deleted": deleted})
    return signing_key_ensure_active()


def signing_keys_check() -> int:
    """Every stored signing key decrypts with KEY_ENCRYPTION_KEYS (run before a process signs); how many there are.

    Raises KeyEncryptionError naming the first key that does not, so a wrong key-encryption key stops the process
    at start-up with that message.
    """
    keys = list(SigningKey.objects.only("kid", "private_pem"))
    for key in keys:
        unseal(key.private_pem, what=f"signing key {key.kid}")
    return len(keys)


def signing_keys_reencrypt() -> int:
    """Re-encrypt every stored signing key under the first key-encryption key (its rotation); how many."""
    with transaction.atomic():
        _lock_signing_keys()
        keys = list(SigningKey.objects.select_for_update().only("id", "kid", "private_pem"))
        for key in keys:
            key.private_pem = reseal(key.private_pem, what=f"signing key {key.kid}")
            key.save(update_fields=["private_pem"])
    signing_key_cache_forget()
    return len(keys)
