"""Emergency revocation of a signing key, the NATS side: the broadcast that tells every gateway to drop the key
from its cache at once (instead of at the cache's expiry), and the bridge task that stops signing with it.
The revocation itself is `signing_key_revoke` (services/signing_keys.py)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from auth_service.accounts.services.signing_keys import signing_key_cache_forget
from common.contracts import subjects
from common.contracts.envelope import request_body
from common.messaging.client import get_client

log = logging.getLogger(__name__)


def key_revocation_broadcast(kid: str) -> None:
    """Tell every gateway to drop `kid` now (raises ServiceError when NATS cannot take the message)."""
    get_client().publish(subjects.JWKS_KEY_REVOKED, request_body({"kid": kid}))


async def forget_revoked_keys(nc: NatsConnection, stop: asyncio.Event, pool: Executor) -> None:
    """Bridge background task: on a revocation broadcast, stop signing with the key this process has cached (it
    re-reads the active key at its next signature instead of up to ACTIVE_KEY_CACHE_SECONDS later)."""

    async def on_revoked(_: Msg) -> None:
        signing_key_cache_forget()

    subscription = await nc.subscribe(subjects.JWKS_KEY_REVOKED, cb=on_revoked)
    await stop.wait()
    try:
        await subscription.unsubscribe()
    except Exception:  # already gone with the connection
        log.warning("unsubscribe failed", exc_info=True)
