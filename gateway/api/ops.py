"""Broadcasts every gateway process listens to: the run-time log level (one POST reaches them all) and the
emergency revocation of a signing key (`manage_auth.py revoke_key`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from common.conf.logging import current_log_level, set_service_log_level
from common.contracts import subjects
from common.contracts.envelope import Agent, error_reply, ok_reply, request_body
from common.contracts.errors import BadRequest, ServiceError
from common.messaging.client import NatsClient, get_client
from common.messaging.codec import dumps, loads

log = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SERVICES = ("gateway", "auth", "main")

_listening: NatsClient | None = None
_listen_lock = threading.Lock()
# Other broadcasts every gateway process hears, by subject (gateway/api/jwks.py adds the key revocations).
BROADCAST_HANDLERS: dict[str, Callable[[Msg], Awaitable[None]]] = {}


def ensure_log_level_listener() -> None:
    """Subscribe this process to `ops.log-level.set.gateway` and BROADCAST_HANDLERS once per NATS client.

    Gateways run no bridge of their own: each HTTP worker process subscribes itself, lazily, the first time it
    talks to NATS (connecting at import would open connections from every management command); fetching the
    signing keys is such a first time, so a process that holds keys hears of their revocation.
    """
    global _listening
    client = get_client()
    if _listening is client:
        return
    with _listen_lock:
        if _listening is client:
            return
        try:
            nc = client.connection()
            client.run(nc.subscribe(subjects.log_level_set(settings.SERVICE_NAME), cb=_on_log_level), timeout=2)
            for subject, handler in BROADCAST_HANDLERS.items():
                client.run(nc.subscribe(subject, cb=handler), timeout=2)
        except (ServiceError, NatsError, OSError):
            # Not fatal: the request goes on (and reports NATS trouble itself); the next one tries again.
            log.warning("could not subscribe to log-level broadcasts", exc_info=True)
            return
        _listening = client


async def _on_log_level(msg: Msg) -> None:
    try:
        body = loads(msg.data)
        data = body.get("data") if isinstance(body, dict) else None
        level = data.get("level") if isinstance(data, dict) else None
        applied = set_service_log_level(str(level))
        reply = ok_reply({"service": settings.SERVICE_NAME, "level": applied})
        log.warning("log level changed by broadcast", extra={"level": applied})
    except ValueError as exc:
        reply = error_reply(BadRequest(str(exc)))
    if msg.reply:
        await msg.respond(dumps(reply))


def local_log_level() -> dict[str, str]:
    return {"service": settings.SERVICE_NAME, "level": current_log_level()}


def broadcast_log_level(level: str, *, agent: Agent | None) -> dict[str, str]:
    """Tell every gateway process to use `level`; applied here too before answering (the broadcast may lag)."""
    # Published first: if NATS is down the caller gets 503 and no process changed, rather than only this one.
    get_client().publish(subjects.log_level_set(settings.SERVICE_NAME), request_body({"level": level}, agent))
    applied = set_service_log_level(level)
    return {"service": settings.SERVICE_NAME, "level": applied}


def is_local(service: str) -> bool:
    return service == settings.SERVICE_NAME


def log_level_reply(reply: Any, service: str) -> dict[str, Any]:
    """The services answer {service, level}; keep only that, whatever else a bridge adds."""
    if not isinstance(reply, dict):
        raise ServiceError("Malformed reply from service", status=502, code="bad_reply")
    return {"service": reply.get("service", service), "level": reply.get("level")}
