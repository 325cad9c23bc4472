"""A durable JetStream pull consumer for a bridge's BACKGROUND: applies each message once, acks after commit.

Messages are applied in stream order on the bridge's thread pool. A fetched batch is applied in one database
transaction with a savepoint per message, so each message is atomic with its inbox row (the handler's contract)
while the batch pays for one commit. Acknowledgements follow the commit:

- applied (or already applied): ack;
- bad data (undecodable, unknown type, invalid): parked in DeadLetter and terminated at once;
- a failure: nak with a growing delay; on its last delivery, parked and terminated, so it never blocks the rest;
- the database fails: nothing of the batch was committed, so it is handed back with a delay and nothing more is
  fetched until the database answers (an outage must not use up every message's deliveries); messages on their
  last delivery are held in progress meanwhile, since JetStream would not deliver them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import nats.errors
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection, transaction
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError, ServiceUnavailableError

from common.inbox.policies import is_last_delivery, redelivery_delay
from common.inbox.services import EventHandler, InvalidMessage, dead_letter_park
from common.messaging.jetstream import MSG_ID_HEADER, ConsumerSpec, decode_event
from common.outbox.policies import exponential_backoff

log = logging.getLogger(__name__)

# How often an idle consumer checks that its durable still exists (a wiped JetStream store loses it silently).
_IDLE_CHECK_SECONDS = 30.0


class Verdict(enum.Enum):
    APPLIED = "applied"  # ack
    PARKED = "parked"  # term: in DeadLetter now
    RETRY = "retry"  # nak with a delay


@dataclass(frozen=True)
class Group:
    """The outcome of one transaction over a run of messages: verdicts for a prefix of them, or nothing at all."""

    verdicts: list[Verdict]
    is_lost: bool = False


@dataclass(frozen=True)
class Delivery:
    """What the worker thread needs of a message, copied off it (a Msg belongs to the event loop)."""

    subject: str
    data: bytes
    headers: dict[str, str]
    message_id: str
    num_delivered: int
    stream_sequence: int | None


@dataclass(frozen=True)
class Limits:
    """What the server enforces on this consumer, read from it rather than from settings that may have drifted."""

    max_deliver: int
    ack_wait_seconds: float


class JetStreamConsumer:
    """A bridge background task: `BACKGROUND = [JetStreamConsumer(name=..., handler=..., spec=..., provision=...)]`."""

    def __init__(
        self,
        *,
        name: str,
        handler: EventHandler,
        spec: Callable[[], ConsumerSpec | None],
        provision: Callable[..., Awaitable[object]],
    ) -> None:
        self.name = name
        self.handler = handler
        self.spec = spec  # read when the task starts, so settings are the running process's
        self.provision = provision  # awaited as provision(js, update=False): creates only what is missing

    async def __call__(self, nc: NatsConnection, stop_event: asyncio.Event, executor: Executor) -> None:
        spec = self.spec()
        if spec is None:
            log.warning("consumer not configured; not consuming", extra={"consumer": self.name})
            return
        js = nc.jetstream()
        sub: JetStreamContext.PullSubscription | None = None
        limits = Limits(max_deliver=spec.max_deliver, ack_wait_seconds=spec.ack_wait_seconds)
        failures = 0
        last_check = time.monotonic()
        log.info("consumer started", extra={"consumer": self.name, "stream": spec.stream, "durable": spec.durable})
        while not stop_event.is_set():
            if nc.is_closed:
                break
            if not nc.is_connected:
                # Reconnecting: nats-py restores the subscription itself; fetching now would only queue requests.
                await _sleep(stop_event, 0.5)
                continue
            try:
                if sub is None:
                    limits = await self._bind(js, spec)
                    sub = await js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
                try:
                    msgs = await sub.fetch(spec.batch, timeout=spec.fetch_timeout_seconds)
                except TimeoutError:  # nothing to do (nats' TimeoutError and FetchTimeoutError included)
                    if time.monotonic() - last_check > _IDLE_CHECK_SECONDS:
                        last_check = time.monotonic()
                        limits = await self._bind(js, spec)
                    continue
                await self._process(msgs, spec, limits, executor, stop_event)
                failures = 0
            except nats.errors.ConnectionClosedError:
                break
            except (NotFoundError, ServiceUnavailableError, nats.errors.NoRespondersError) as exc:
                # The stream or the durable is gone, or JetStream is not answering: bind (and create) again.
                failures += 1
                await _unsubscribe(sub)
                sub = None
                log.warning("consumer lost its stream or durable", extra={"consumer": self.name, "error": str(exc)})
                await _sleep(stop_event, exponential_backoff(failures, base=0.5, cap=10.0))
            except (nats.errors.Error, OSError) as exc:
                failures += 1
                log.warning("consumer fetch failed", extra={"consumer": self.name, "error": repr(exc)})
                await _sleep(stop_event, exponential_backoff(failures, base=0.5, cap=10.0))
            except Exception:  # the bridge never awaits this task before stopping: it must not die in silence
                failures += 1
                log.exception("consumer loop failed; carrying on", extra={"consumer": self.name})
                await _sleep(stop_event, exponential_backoff(failures, base=0.5, cap=10.0))
        await _unsubscribe(sub)
        log.info("consumer stopped", extra={"consumer": self.name})

    async def _bind(self, js: JetStreamContext, spec: ConsumerSpec) -> Limits:
        await self.provision(js, update=False)
        info = await js.consumer_info(spec.stream, spec.durable)
        config = info.config
        return Limits(
            max_deliver=config.max_deliver if config.max_deliver is not None else spec.max_deliver,
            ack_wait_seconds=config.ack_wait or spec.ack_wait_seconds,
        )

    async def _process(
        self, msgs: Sequence[Msg], spec: ConsumerSpec, limits: Limits, executor: Executor, stop_event: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        pending = list(msgs)
        budget = limits.ack_wait_seconds / 4
        while pending:
            if stop_event.is_set():
                # Hand the rest back now, so another instance takes them without waiting out the ack wait.
                await _each(pending, _nak_now)
                return
            deliveries = [_delivery(msg) for msg in pending]
            group = await loop.run_in_executor(
                executor, self._apply_group, deliveries, limits, budget, stop_event.is_set
            )
            if group.is_lost:
                await self._recover(pending, deliveries, spec, limits, executor, stop_event)
                return
            for msg, delivery, verdict in zip(pending, deliveries, group.verdicts, strict=False):
                await self._settle(msg, verdict, delivery, spec)
            pending = pending[len(group.verdicts) :]
            if pending:
                # The whole batch was delivered at once: keep its tail from timing out into extra deliveries.
                await _each(pending, _in_progress)

    def _apply_group(
        self, deliveries: Sequence[Delivery], limits: Limits, budget: float, should_stop: Callable[[], bool]
    ) -> Group:
        """Runs on a worker thread: apply messages in stream order in ONE transaction, each in its own savepoint.

        Committing once per group rather than once per message matters because the commit's WAL flush costs more
        than the writes of a small event. Each message is still atomic with its inbox row (its savepoint), a
        failing one is rolled back alone, and nothing is acknowledged before the group has committed. Returns
        after `budget` seconds, or once the consumer is stopping, with verdicts for the messages done so far.
        """
        close_old_connections()
        started = time.monotonic()
        verdicts: list[Verdict] = []
        applied: list[tuple[Delivery, object]] = []
        try:
            with transaction.atomic():
                for delivery in deliveries:
                    verdict, outcome = self._apply_one(delivery, limits)
                    verdicts.append(verdict)
                    if verdict is Verdict.APPLIED:
                        applied.append((delivery, outcome))
                    if time.monotonic() - started > budget or should_stop():
                        break
        except DatabaseError as exc:
            # The connection (or the database) failed under the group: nothing of it was committed.
            log.warning("database unavailable; batch rolled back", extra={"consumer": self.name, "error": str(exc)})
            close_old_connections()
            return Group(verdicts=[], is_lost=True)
        elapsed_ms = round((time.monotonic() - started) * 1000, 2)
        for delivery, outcome in applied:
            log.info("message applied", extra=self._extra(delivery, outcome=str(outcome), batch_ms=elapsed_ms))
        return Group(verdicts=verdicts)

    def _apply_one(self, delivery: Delivery, limits: Limits) -> tuple[Verdict, object]:
        """Decode and apply one message inside the group, or park it. Database failures escape to the group."""
        last = is_last_delivery(delivery.num_delivered, limits.max_deliver)
        try:
            with transaction.atomic():  # a savepoint: this message's failure never undoes the others of the group
                try:
                    envelope = decode_event(delivery.data)
                except ValueError as exc:
                    raise InvalidMessage(str(exc)) from None
                outcome = self.handler(event_type=envelope.type, payload=envelope.data, message_id=delivery.message_id)
        except InvalidMessage as exc:
            log.warning("message is invalid; parking it", extra=self._extra(delivery, error=str(exc)))
            self._park(delivery, f"invalid message: {exc}")
            return Verdict.PARKED, None
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # a handler bug or an unexpected state: retried, then parked on the last delivery
            log.exception("message failed", extra=self._extra(delivery, last_delivery=last))
            if not last:
                return Verdict.RETRY, None
            self._park(delivery, f"{type(exc).__name__}: {exc}")
            return Verdict.PARKED, None
        return Verdict.APPLIED, outcome

    def _park(self, delivery: Delivery, error: str) -> None:
        dead_letter_park(
            consumer=self.name,
            message_id=delivery.message_id,
            subject=delivery.subject,
            payload=delivery.data,
            headers=delivery.headers,
            error=error[:2000],
            deliveries=delivery.num_delivered,
            stream_sequence=delivery.stream_sequence,
        )

    async def _recover(
        self,
        msgs: Sequence[Msg],
        deliveries: Sequence[Delivery],
        spec: ConsumerSpec,
        limits: Limits,
        executor: Executor,
        stop_event: asyncio.Event,
    ) -> None:
        """The database failed under a group. Give back what JetStream will redeliver (with a delay), hold what it
        will not (last deliveries) in progress until the database answers, and fetch nothing meanwhile, so an
        outage does not use up every message's deliveries."""
        held: list[tuple[Msg, Delivery]] = []
        for msg, delivery in zip(msgs, deliveries, strict=True):
            if is_last_delivery(delivery.num_delivered, limits.max_deliver):
                held.append((msg, delivery))
            else:
                delay = redelivery_delay(
                    delivery.num_delivered, base=spec.retry_base_seconds, cap=spec.retry_max_seconds
                )
                await _quietly(msg.nak(delay=delay))
        loop = asyncio.get_running_loop()
        while await self._await_database(executor, stop_event, keepalive=[msg for msg, _ in held]):
            if not held:
                return
            group = await loop.run_in_executor(
                executor, self._apply_group, [d for _, d in held], limits, math.inf, _never
            )
            if not group.is_lost:
                for (msg, delivery), verdict in zip(held, group.verdicts, strict=True):
                    await self._settle(msg, verdict, delivery, spec)
                return
        for _, delivery in held:
            log.error(
                "stopping with a message on its last delivery neither applied nor parked; it stays in the stream",
                extra=self._extra(delivery),
            )

    async def _settle(self, msg: Msg, verdict: Verdict, delivery: Delivery, spec: ConsumerSpec) -> None:
        try:
            if verdict is Verdict.APPLIED:
                await msg.ack()
            elif verdict is Verdict.PARKED:
                await msg.term()
            elif verdict is Verdict.RETRY:
                await msg.nak(
                    delay=redelivery_delay(
                        delivery.num_delivered, base=spec.retry_base_seconds, cap=spec.retry_max_seconds
                    )
                )
        except nats.errors.Error as exc:
            # A lost ack means a redelivery, which the inbox turns into a no-op.
            log.warning("could not acknowledge message", extra=self._extra(delivery, error=repr(exc)))

    async def _await_database(
        self, executor: Executor, stop_event: asyncio.Event, *, keepalive: Sequence[Msg] = ()
    ) -> bool:
        """Wait until the database answers (True) or the consumer is stopping (False)."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while not stop_event.is_set():
            if await loop.run_in_executor(executor, _database_answers):
                return True
            attempt += 1
            await _each(keepalive, _in_progress)
            await _sleep(stop_event, exponential_backoff(attempt, base=0.5, cap=10.0))
        return False

    def _extra(self, delivery: Delivery, **more: Any) -> dict[str, Any]:
        return {
            "consumer": self.name,
            "subject": delivery.subject,
            "message_id": delivery.message_id,
            "deliveries": delivery.num_delivered,
            **more,
        }


def consumer_named(name: str) -> JetStreamConsumer | None:
    """The consumer this project runs under `name` (its bridge's BACKGROUND), e.g. to retry one of its letters."""
    from django.conf import settings

    module = import_module(settings.NATS_HANDLERS_MODULE)
    for task in getattr(module, "BACKGROUND", ()):
        if isinstance(task, JetStreamConsumer) and task.name == name:
            return task
    return None


def _delivery(msg: Msg) -> Delivery:
    headers = dict(msg.headers or {})
    meta = msg.metadata
    sequence = meta.sequence.stream if meta.sequence else None
    message_id = headers.get(MSG_ID_HEADER) or f"{meta.stream}:{sequence}"
    return Delivery(
        subject=msg.subject,
        data=msg.data,
        headers=headers,
        message_id=message_id[:100],
        num_delivered=meta.num_delivered,
        stream_sequence=sequence,
    )


def _database_answers() -> bool:
    close_old_connections()
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        connection.close_if_unusable_or_obsolete()
        return False
    return True


async def _each(msgs: Sequence[Msg], action: Callable[[Msg], Awaitable[None]]) -> None:
    for msg in msgs:
        await _quietly(action(msg))


async def _nak_now(msg: Msg) -> None:
    await msg.nak()


async def _in_progress(msg: Msg) -> None:
    await msg.in_progress()


def _never() -> bool:
    return False


async def _quietly(awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except nats.errors.Error as exc:
        log.warning("could not acknowledge message", extra={"error": repr(exc)})


async def _sleep(stop_event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)


async def _unsubscribe(sub: JetStreamContext.PullSubscription | None) -> None:
    if sub is not None:
        try:
            await sub.unsubscribe()
        except (nats.errors.Error, ValueError) as exc:
            log.debug("unsubscribe failed", extra={"error": repr(exc)})
