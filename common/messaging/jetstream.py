"""JetStream plumbing shared by the outbox relay and the inbox consumer: specs from settings, provisioning, envelope."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from common.messaging.codec import dumps, loads

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
Provisioned = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class StreamSpec:
    """The identity-events stream as this deployment wants it."""

    name: str
    subject_prefix: str
    max_age_seconds: float
    duplicate_window_seconds: float
    replicas: int

    @property
    def subjects(self) -> list[str]:
        return [f"{self.subject_prefix}.>"]

    def subject_for(self, event_type: str) -> str:
        """`auth.user.registered` → `<prefix>.registered`: the prefix is configurable, the event suffix is not."""
        return f"{self.subject_prefix}.{event_type.rsplit('.', 1)[-1]}"

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_seconds,
            duplicate_window=self.duplicate_window_seconds,
            num_replicas=self.replicas,
        )


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer of the stream, with the client-side knobs of the loop that drives it."""

    stream: str
    durable: str
    filter_subject: str
    ack_wait_seconds: float
    max_deliver: int
    backoff_seconds: tuple[float, ...]
    max_ack_pending: int
    batch: int
    fetch_timeout_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            max_deliver=self.max_deliver,
            backoff=list(self.backoff_seconds) or None,
            filter_subject=self.filter_subject,
            max_ack_pending=self.max_ack_pending,
        )


def user_events_stream() -> StreamSpec:
    """Read lazily from settings (common/conf/settings.py, `user_events_stream_settings`)."""
    from django.conf import settings

    return StreamSpec(
        name=settings.USER_EVENTS_STREAM,
        subject_prefix=settings.USER_EVENTS_SUBJECT_PREFIX,
        max_age_seconds=float(settings.USER_EVENTS_MAX_AGE_SECONDS),
        duplicate_window_seconds=float(settings.USER_EVENTS_DUPLICATE_WINDOW_SECONDS),
        replicas=int(settings.USER_EVENTS_REPLICAS),
    )


def user_events_consumer() -> ConsumerSpec | None:
    """The project's durable consumer of identity events, or None in a project that only produces them."""
    from django.conf import settings

    durable = settings.USER_EVENTS_DURABLE
    if not durable:
        return None
    stream = user_events_stream()
    ack_wait = float(settings.USER_EVENTS_ACK_WAIT_SECONDS)
    max_deliver = int(settings.USER_EVENTS_MAX_DELIVER)
    backoff = settings.USER_EVENTS_BACKOFF_SECONDS
    return ConsumerSpec(
        stream=stream.name,
        durable=durable,
        filter_subject=f"{stream.subject_prefix}.>",
        ack_wait_seconds=ack_wait,
        max_deliver=max_deliver,
        backoff_seconds=redelivery_schedule(ack_wait, max_deliver, backoff),
        max_ack_pending=int(settings.USER_EVENTS_MAX_ACK_PENDING),
        batch=int(settings.USER_EVENTS_BATCH),
        fetch_timeout_seconds=float(settings.USER_EVENTS_FETCH_TIMEOUT_SECONDS),
        retry_base_seconds=float(settings.USER_EVENTS_RETRY_BASE_SECONDS),
        retry_max_seconds=float(settings.USER_EVENTS_RETRY_MAX_SECONDS),
    )


def redelivery_schedule(ack_wait: float, max_deliver: int, backoff: Any = None) -> tuple[float, ...]:
    """The server-side backoff for messages nobody acked (a consumer died holding them).

    JetStream takes backoff[0] as the ack wait and wants fewer entries than max_deliver, so the default doubles
    the ack wait per redelivery, and an explicit list is cut to fit rather than refused at provisioning time.
    """
    if max_deliver <= 1:
        return ()
    if backoff is None:
        return tuple(ack_wait * 2.0**i for i in range(max_deliver - 1))
    return tuple(float(value) for value in backoff)[: max_deliver - 1]


async def stream_ensure(js: JetStreamContext, spec: StreamSpec, *, update: bool = True) -> Provisioned:
    """Create the stream, or bring an existing one to the spec (only the fields the spec owns are compared)."""
    wanted = spec.config()
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(wanted)
        log.info("stream created", extra={"stream": spec.name, "subjects": spec.subjects})
        return "created"
    have = info.config
    current = (
        sorted(have.subjects or []),
        have.max_age,
        have.duplicate_window,
        have.storage,
        have.discard,
        have.num_replicas,
    )
    target = (
        sorted(spec.subjects),
        wanted.max_age,
        wanted.duplicate_window,
        wanted.storage,
        wanted.discard,
        wanted.num_replicas,
    )
    if current == target or not update:
        return "unchanged"
    await js.update_stream(wanted)
    log.info("stream updated", extra={"stream": spec.name})
    return "updated"


async def consumer_ensure(js: JetStreamContext, spec: ConsumerSpec, *, update: bool = True) -> Provisioned:
    """Create the durable consumer, or update its mutable settings. The stream must exist."""
    wanted = spec.config()
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, wanted)
        log.info("consumer created", extra={"stream": spec.stream, "consumer": spec.durable})
        return "created"
    have = info.config
    # With a backoff list the server reports backoff[0] as the ack wait, so compare what it will actually use.
    effective_ack_wait = spec.backoff_seconds[0] if spec.backoff_seconds else spec.ack_wait_seconds
    current = (have.ack_wait, have.max_deliver, tuple(have.backoff or ()), have.filter_subject, have.max_ack_pending)
    target = (effective_ack_wait, spec.max_deliver, spec.backoff_seconds, spec.filter_subject, spec.max_ack_pending)
    if current == target or not update:
        return "unchanged"
    # The create endpoint updates a durable in place when only mutable fields differ.
    await js.add_consumer(spec.stream, wanted)
    log.info("consumer updated", extra={"stream": spec.stream, "consumer": spec.durable})
    return "updated"


@dataclass(frozen=True)
class EventEnvelope:
    """One identity event as carried on the stream."""

    id: str
    type: str
    aggregate_id: str
    occurred_at: str
    data: dict[str, Any]


def encode_event(
    *, event_id: uuid.UUID, event_type: str, aggregate_id: uuid.UUID, occurred_at: datetime, data: dict[str, Any]
) -> bytes:
    return dumps(
        {
            "id": str(event_id),
            "type": event_type,
            "aggregateId": str(aggregate_id),
            "occurredAt": occurred_at,
            "data": data,
        }
    )


def decode_event(raw: bytes | str) -> EventEnvelope:
    """Parse an event body; ValueError for anything that is not a well-formed envelope (bad data, never retried)."""
    try:
        body = loads(raw)
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")
    event_type, data = body.get("type"), body.get("data")
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("envelope has no type")
    if not isinstance(data, dict):
        raise ValueError("envelope data is not an object")
    return EventEnvelope(
        id=str(body.get("id") or ""),
        type=event_type,
        aggregate_id=str(body.get("aggregateId") or ""),
        occurred_at=str(body.get("occurredAt") or ""),
        data=data,
    )


async def user_events_provision(js: JetStreamContext, *, update: bool = True) -> dict[str, Provisioned]:
    """Ensure the identity-events stream and, in a consuming project, its durable consumer. Idempotent."""
    stream = user_events_stream()
    done: dict[str, Provisioned] = {f"stream {stream.name}": await stream_ensure(js, stream, update=update)}
    consumer = user_events_consumer()
    if consumer is not None:
        done[f"consumer {consumer.stream}/{consumer.durable}"] = await consumer_ensure(js, consumer, update=update)
    return done
