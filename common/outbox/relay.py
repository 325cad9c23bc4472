"""The outbox relay: publishes pending rows to JetStream in order, once each, and marks them after the PubAck.

One batch is three steps: lease rows in a short transaction, publish them with no transaction open, then record
the PubAcks and failures in another short transaction. Leases make several relays safe together; JetStream's
duplicate window (Nats-Msg-Id = event_id) absorbs the republish of a relay that died between publish and mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from common.contracts.errors import ServiceError
from common.messaging.client import NatsClient, get_client
from common.messaging.jetstream import MSG_ID_HEADER, StreamSpec, encode_event, user_events_stream
from common.outbox.services import (
    Claim,
    ClaimedEvent,
    Failure,
    outbox_claim,
    outbox_mark_failed,
    outbox_mark_published,
    outbox_release,
)

log = logging.getLogger(__name__)

EXPECTED_STREAM_HEADER = "Nats-Expected-Stream"


@dataclass(frozen=True)
class RelaySettings:
    lease_seconds: float
    ack_timeout_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float


def relay_settings() -> RelaySettings:
    from django.conf import settings

    return RelaySettings(
        lease_seconds=float(settings.OUTBOX_LEASE_SECONDS),
        ack_timeout_seconds=float(settings.OUTBOX_ACK_TIMEOUT_SECONDS),
        retry_base_seconds=float(settings.OUTBOX_RETRY_BASE_SECONDS),
        retry_max_seconds=float(settings.OUTBOX_RETRY_MAX_SECONDS),
    )


@dataclass
class _Outcome:
    """Filled in as PubAcks arrive, so a batch cut short by a timeout still keeps what was acknowledged."""

    acked: list[int] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    held_back: list[int] = field(default_factory=list)

    def settle_rest(self, events: list[ClaimedEvent], error: str) -> None:
        done = set(self.acked) | {f.event.id for f in self.failed} | set(self.held_back)
        self.failed.extend(Failure(e, error) for e in events if e.id not in done)


Publish = Callable[[list[ClaimedEvent]], "_Outcome"]


def relay_pending(*, batch_size: int = 500, nats_url: str | None = None, max_batches: int = 100) -> int:
    """Publish due outbox rows, batch after batch, until none is left (or max_batches); returns how many went out.

    Synchronous, for a Celery task or a command; the NATS connection is the process's persistent one.
    """
    conf = relay_settings()
    stream = user_events_stream()
    client = _client_for(nats_url)

    def publish(events: list[ClaimedEvent]) -> _Outcome:
        return _publish(client, stream, events, conf)

    return relay_batches(publish, conf=conf, batch_size=batch_size, max_batches=max_batches)


def relay_batches(
    publish: Publish, *, conf: RelaySettings, batch_size: int, max_batches: int, stop_when_short: bool = False
) -> int:
    """Claim, publish and settle batch after batch until none is left (or max_batches); returns how many went out.

    While a full batch is being published (on a thread of its own), the next one is claimed: the claim passes
    over every row with an earlier unpublished event of its aggregate that is leased, so a batch in flight never
    lets a later event of one of its aggregates go ahead of it.

    `stop_when_short`: end after a batch smaller than `batch_size` rather than claiming once more (for a relay
    that is woken for each commit: the next commit wakes it again, and beat relays whatever another relay's
    concurrent claim made it skip).
    """
    published = 0
    batches = 0
    publisher: ThreadPoolExecutor | None = None
    claim = outbox_claim(batch_size=batch_size, lease_seconds=conf.lease_seconds)
    try:
        while claim.events:
            batches += 1
            started = time.perf_counter()
            full = len(claim.events) >= batch_size
            ahead: Claim | None = None
            if full and batches < max_batches:
                if publisher is None:
                    publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-publish")
                in_flight = publisher.submit(publish, claim.events)
                try:
                    ahead = outbox_claim(batch_size=batch_size, lease_seconds=conf.lease_seconds)
                finally:
                    outcome = in_flight.result()
            else:
                outcome = publish(claim.events)
            published += _settle(claim, outcome, conf, started)
            if outcome.failed and not outcome.acked:
                # Nothing got through: NATS or the stream is down. Backoff paces the next try, not this loop.
                if ahead is not None:
                    outbox_release(token=ahead.token, ids=[e.id for e in ahead.events])
                break
            if ahead is not None and ahead.events:
                claim = ahead
            # An empty claim ahead proves nothing: rows behind the batch that was in flight were blocked then.
            elif batches >= max_batches or (stop_when_short and not full):
                break
            else:
                claim = outbox_claim(batch_size=batch_size, lease_seconds=conf.lease_seconds)
    finally:
        if publisher is not None:
            publisher.shutdown(wait=True)
    return published


def _settle(claim: Claim, outcome: _Outcome, conf: RelaySettings, started: float) -> int:
    """Mark the acknowledged rows, back off the failed ones, give back the held-back ones; returns how many marked."""
    marked = outbox_mark_published(ids=outcome.acked)
    outbox_mark_failed(
        token=claim.token, failures=outcome.failed, base=conf.retry_base_seconds, cap=conf.retry_max_seconds
    )
    outbox_release(token=claim.token, ids=outcome.held_back)
    log.info(
        "outbox batch relayed",
        extra={
            "published": len(outcome.acked),
            "failed": len(outcome.failed),
            "held_back": len(outcome.held_back),
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    if outcome.failed:
        first = outcome.failed[0]
        log.warning(
            "outbox publish failed",
            extra={"event_id": str(first.event.event_id), "error": first.error, "failed": len(outcome.failed)},
        )
    return marked


def _publish(client: NatsClient, stream: StreamSpec, events: list[ClaimedEvent], conf: RelaySettings) -> _Outcome:
    outcome = _Outcome()
    try:
        nc = client.connection()
        client.run(_publish_events(nc, stream, events, conf, outcome), timeout=_publish_timeout(events, conf))
    except (ServiceError, ConnectionError, nats.errors.Error) as exc:
        outcome.settle_rest(events, _describe(exc))
    return outcome


def _publish_timeout(events: list[ClaimedEvent], conf: RelaySettings) -> float:
    waves = max(Counter(e.aggregate_id for e in events).values())
    return conf.ack_timeout_seconds * waves + 10.0


async def _publish_events(
    nc: NatsConnection, stream: StreamSpec, events: list[ClaimedEvent], conf: RelaySettings, outcome: _Outcome
) -> None:
    """Publish a claimed batch on `nc` (from its own event loop); whatever is not acknowledged ends up failed."""
    try:
        if not nc.is_connected:
            raise ConnectionError("NATS connection is down (reconnecting)")
        await _publish_in_waves(nc, stream, events, conf.ack_timeout_seconds, outcome)
    except (ServiceError, ConnectionError, nats.errors.Error) as exc:
        outcome.settle_rest(events, _describe(exc))


async def _publish_in_waves(
    nc: NatsConnection, stream: StreamSpec, events: list[ClaimedEvent], ack_timeout: float, outcome: _Outcome
) -> None:
    """Publish the batch pipelined, one event per aggregate per wave.

    Within a wave the events are of different aggregates, so their relative order does not matter and all of
    them can be in flight at once. An aggregate's next event goes only after the previous one was acknowledged;
    if one fails, the rest of its aggregate is held back (never published ahead of it).
    """
    chains: dict[Any, deque[ClaimedEvent]] = {}
    for event in events:  # already in id order
        chains.setdefault(event.aggregate_id, deque()).append(event)
    while chains:
        wave = [chain.popleft() for chain in chains.values()]
        errors = await _publish_wave(nc, stream, wave, ack_timeout)
        for event, error in zip(wave, errors, strict=True):
            if error is None:
                outcome.acked.append(event.id)
                if not chains[event.aggregate_id]:
                    del chains[event.aggregate_id]
            else:
                outcome.failed.append(Failure(event, error))
                outcome.held_back.extend(e.id for e in chains.pop(event.aggregate_id))


async def _publish_wave(
    nc: NatsConnection, stream: StreamSpec, wave: list[ClaimedEvent], ack_timeout: float
) -> list[str | None]:
    """Write every event of the wave, then wait for all PubAcks together: one round trip for the whole wave.

    Hand-rolled on a private reply inbox rather than nats-py's publish_async, whose futures never resolve
    when JetStream answers with an error (a refused message would pass for a timeout).
    """
    loop = asyncio.get_running_loop()
    replies: list[asyncio.Future[Msg | BaseException]] = [loop.create_future() for _ in wave]
    inbox = nc.new_inbox()

    async def on_reply(msg: Msg) -> None:
        index = int(msg.subject.rsplit(".", 1)[1])
        if 0 <= index < len(replies) and not replies[index].done():
            replies[index].set_result(msg)

    sub = await nc.subscribe(f"{inbox}.*", cb=on_reply)
    try:
        for index, event in enumerate(wave):
            body = encode_event(
                event_id=event.event_id,
                event_type=event.event_type,
                aggregate_id=event.aggregate_id,
                occurred_at=event.created_at,
                data=event.payload,
            )
            headers = {
                MSG_ID_HEADER: str(event.event_id),
                # The server refuses the message if its subject belongs to another stream.
                EXPECTED_STREAM_HEADER: stream.name,
            }
            try:
                await nc.publish(stream.subject_for(event.event_type), body, reply=f"{inbox}.{index}", headers=headers)
            except (nats.errors.Error, OSError) as exc:
                replies[index].set_result(exc)
        await asyncio.wait(replies, timeout=ack_timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return [_ack_error(reply, ack_timeout) for reply in replies]


def _ack_error(reply: asyncio.Future[Msg | BaseException], ack_timeout: float) -> str | None:
    """None for a PubAck (a duplicate included: the event is in the stream), else why it is not stored."""
    if not reply.done():
        reply.cancel()
        return f"no PubAck within {ack_timeout:g}s"
    result = reply.result()
    if isinstance(result, BaseException):
        return _describe(result)
    if result.headers and result.headers.get("Status") == "503":
        return "no stream is bound to this subject"
    try:
        ack = orjson.loads(result.data)
    except orjson.JSONDecodeError:
        return "unreadable PubAck"
    error = ack.get("error") if isinstance(ack, dict) else None
    if error is not None:
        return f"JetStream refused it: {error.get('description', 'unknown error')} (err_code {error.get('err_code')})"
    return None


def _describe(exc: BaseException) -> str:
    """The error as stored in last_error: its class and message, never the payload."""
    return f"{type(exc).__name__}: {exc}"[:1000]


_clients: dict[tuple[str, int], NatsClient] = {}
_clients_lock = threading.Lock()


def _client_for(nats_url: str | None) -> NatsClient:
    """The process's shared client, or a persistent one per explicit URL (a forked child makes its own)."""
    from django.conf import settings

    if nats_url is None or nats_url == settings.NATS_URL:
        return get_client()
    key = (nats_url, os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = NatsClient(nats_url, name=f"{settings.SERVICE_NAME}-relay-{os.getpid()}")
            _clients[key] = client
        return client


# -- the in-process relay ---------------------------------------------------------------------------------------

_local_wakers: list[Callable[[], None]] = []
_local_wakers_lock = threading.Lock()


def relay_wake_local() -> bool:
    """Wake the relay running in this process, if there is one; False when there is none (fall back to a worker)."""
    with _local_wakers_lock:
        wakers = list(_local_wakers)
    for wake in wakers:
        wake()
    return bool(wakers)


class LocalRelay:
    """A bridge background task: relays the outbox from the process that committed the rows, as soon as it did.

    OUTBOX_KICK wakes it after each commit (`relay_wake_local`), so an event leaves within milliseconds instead
    of waiting for a Celery round trip. The database work runs on one thread of its own (never a handler's),
    the publishes on the bridge's NATS connection. It also relays every `idle_seconds` when nothing woke it.
    Running beside the Celery relay (beat's safety net) and other bridges is safe: claims are leases taken with
    SKIP LOCKED, and a republished event is dropped by JetStream's duplicate window (Nats-Msg-Id).
    """

    def __init__(self, *, batch_size: int | None = None, idle_seconds: float | None = None) -> None:
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds

    async def __call__(self, nc: NatsConnection, stop: asyncio.Event, pool: Any) -> None:
        from django.conf import settings

        if not settings.OUTBOX_LOCAL_RELAY:
            log.info("in-process outbox relay disabled (OUTBOX_LOCAL_RELAY=false): Celery relays")
            return
        batch_size = self.batch_size or int(settings.OUTBOX_BATCH_SIZE)
        idle = self.idle_seconds or float(settings.OUTBOX_LOCAL_RELAY_IDLE_SECONDS)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        conf = relay_settings()
        stream = user_events_stream()

        def publish(events: list[ClaimedEvent]) -> _Outcome:
            # Called on the relay thread: the publish itself runs on the bridge's loop, with its connection.
            outcome = _Outcome()
            future = asyncio.run_coroutine_threadsafe(_publish_events(nc, stream, events, conf, outcome), loop)
            try:
                future.result(timeout=_publish_timeout(events, conf))
            except TimeoutError:
                future.cancel()
                outcome.settle_rest(events, "publish timed out")
            return outcome

        def turn() -> int:
            from django.db import close_old_connections

            # A dead connection (database restart) is replaced here rather than failing every later turn.
            close_old_connections()
            return relay_batches(publish, conf=conf, batch_size=batch_size, max_batches=10, stop_when_short=True)

        def waker() -> None:
            loop.call_soon_threadsafe(wake.set)

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-relay")
        with _local_wakers_lock:
            _local_wakers.append(waker)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            wake.set()  # whatever was left pending when the process started
            while not stop.is_set():
                woken = asyncio.ensure_future(wake.wait())
                await asyncio.wait({woken, stopping}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if stop.is_set():
                    break
                wake.clear()
                try:
                    published = await loop.run_in_executor(executor, turn)
                except Exception:
                    log.exception("in-process outbox relay turn failed; the next wake-up or beat retries")
                    continue
                if published >= batch_size and not stop.is_set():
                    # Full batches may have left more behind: go again without waiting for a wake-up.
                    wake.set()
        finally:
            with _local_wakers_lock:
                _local_wakers.remove(waker)
            stopping.cancel()
            await loop.run_in_executor(executor, _close_db_connection)
            executor.shutdown(wait=True)


def _close_db_connection() -> None:
    from django.db import connection

    connection.close()
