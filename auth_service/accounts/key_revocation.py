"""Emergency revocation of a signing key: removed from the database (so from the JWKS) and announced to every
gateway over NATS, which drops it from its cache at once instead of at the cache's expiry."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from django.db import transaction
from django.utils import timezone
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from auth_service.accounts.models import SigningKey
from auth_service.accounts.services import (
    _ensure_next_key,
    _forget_active_key,
    _lock_signing_keys,
    signing_key_ensure_active,
    signing_key_rotate,
)
from auth_service.audit.models import SecurityEvent
from auth_service.audit.services import security_event_record
from common.contracts import subjects
from common.contracts.envelope import request_body
from common.contracts.errors import NotFound
from common.messaging.client import get_client

log = logging.getLogger(__name__)


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
        transaction.on_commit(_forget_active_key)
        security_event_record(
            kind=SecurityEvent.Kind.KEY_REVOKED, actor_id=agent_id, reason="revoked", detail={"kid": kid}
        )
    log.warning("signing key revoked", extra={"kid": kid, "deleted": deleted})
    return signing_key_ensure_active()


def key_revocation_broadcast(kid: str) -> None:
    """Tell every gateway to drop `kid` now (raises ServiceError when NATS cannot take the message)."""
    get_client().publish(subjects.JWKS_KEY_REVOKED, request_body({"kid": kid}))


async def forget_revoked_keys(nc: NatsConnection, stop: asyncio.Event, pool: Executor) -> None:
    """Bridge background task: on a revocation broadcast, stop signing with the key this process has cached (it
    re-reads the active key at its next signature instead of up to ACTIVE_KEY_CACHE_SECONDS later)."""

    async def on_revoked(_: Msg) -> None:
        _forget_active_key()

    subscription = await nc.subscribe(subjects.JWKS_KEY_REVOKED, cb=on_revoked)
    await stop.wait()
    try:
        await subscription.unsubscribe()
    except Exception:  # already gone with the connection
        log.warning("unsubscribe failed", exc_info=True)
