"""Test helpers for event streams: a private JetStream stream, prefix and durable per test, deleted afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.test import override_settings
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo, StreamInfo
from nats.js.errors import NotFoundError

from common.messaging.client import NatsClient
from common.messaging.jetstream import MSG_ID_HEADER, encode_event, user_events_provision, user_events_stream


@dataclass
class StoredMessage:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes


@dataclass
class Sandbox:
    """Names and helpers of one test's stream; every call goes to the real NATS server."""

    client: NatsClient
    stream: str
    prefix: str
    durable: str
    seen: list[Msg] = field(default_factory=list)

    def _nc(self) -> NatsConnection:
        # Only ever called outside the client's loop: connecting from inside it would wait on itself.
        return self.client.connection()

    def provision(self) -> dict[str, str]:
        return dict(self.client.run(user_events_provision(self._nc().jetstream()), timeout=10))

    def publish_event(
        self,
        *,
        event_type: str,
        data: dict[str, Any],
        message_id: str | None = None,
        aggregate_id: uuid.UUID | None = None,
    ) -> int:
        """Publish as the outbox relay does (same envelope, same headers); returns the stream sequence."""
        event_id = uuid.UUID(message_id) if message_id else uuid.uuid4()
        body = encode_event(
            event_id=event_id,
            event_type=event_type,
            aggregate_id=aggregate_id or uuid.UUID(str(data.get("id") or uuid.uuid4())),
            occurred_at=datetime.now(UTC),
            data=data,
        )
        subject = user_events_stream().subject_for(event_type)
        return self.publish_raw(subject, body, {MSG_ID_HEADER: str(event_id)})

    def publish_raw(self, subject: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        js = self._nc().jetstream()

        async def go() -> int:
            ack = await js.publish(subject, body, headers=headers, stream=self.stream)
            return int(ack.seq)

        return self.client.run(go(), timeout=10)

    def messages(self) -> list[StoredMessage]:
        """Everything stored in the stream, in order."""

        js = self._nc().jetstream()

        async def go() -> list[StoredMessage]:
            info = await js.stream_info(self.stream)
            out: list[StoredMessage] = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    raw = await js.get_msg(self.stream, seq)
                except NotFoundError:
                    continue
                out.append(StoredMessage(seq, raw.subject or "", dict(raw.headers or {}), raw.data or b""))
            return out

        return self.client.run(go(), timeout=30)

    def limit_message_size(self, max_bytes: int) -> None:
        """Make the server refuse larger messages: a real, per-message publish failure."""

        js = self._nc().jetstream()

        async def go() -> None:
            info = await js.stream_info(self.stream)
            info.config.max_msg_size = max_bytes
            await js.update_stream(info.config)

        self.client.run(go(), timeout=10)

    def stream_info(self) -> StreamInfo:
        return self.client.run(self._nc().jetstream().stream_info(self.stream), timeout=10)

    def consumer_info(self) -> ConsumerInfo:
        return self.client.run(self._nc().jetstream().consumer_info(self.stream, self.durable), timeout=10)

    def settled(self) -> bool:
        """The durable consumer has nothing left to deliver and nothing awaiting an ack."""
        info = self.consumer_info()
        return info.num_pending == 0 and info.num_ack_pending == 0

    @contextmanager
    def wire_tap(self) -> Iterator[list[Msg]]:
        """Every message published on the stream's subjects, as seen on the wire (duplicates included)."""
        captured: list[Msg] = []

        async def on_msg(msg: Msg) -> None:
            captured.append(msg)

        nc = self._nc()

        async def subscribe() -> Any:
            sub = await nc.subscribe(f"{self.prefix}.>", cb=on_msg)
            await nc.flush()
            return sub

        sub = self.client.run(subscribe(), timeout=10)
        try:
            yield captured
        finally:
            self.client.run(nc.flush(), timeout=10)
            self.client.run(sub.unsubscribe(), timeout=10)


@contextmanager
def event_stream_sandbox(**overrides: Any) -> Iterator[Sandbox]:
    """Point the USER_EVENTS_* settings at names no other test or running stack uses; delete the stream after."""
    from django.conf import settings

    suffix = uuid.uuid4().hex[:12]
    names = {
        "USER_EVENTS_STREAM": f"TEST_{suffix}",
        "USER_EVENTS_SUBJECT_PREFIX": f"test.{suffix}.user",
        "USER_EVENTS_DURABLE": f"test_{suffix}",
    }
    client = NatsClient(settings.NATS_URL, name=f"pytest-sandbox-{suffix}")
    try:
        with override_settings(**{**names, **overrides}):
            yield Sandbox(
                client=client,
                stream=names["USER_EVENTS_STREAM"],
                prefix=names["USER_EVENTS_SUBJECT_PREFIX"],
                durable=names["USER_EVENTS_DURABLE"],
            )
    finally:
        try:
            client.run(_delete_stream(client.connection(), names["USER_EVENTS_STREAM"]), timeout=10)
        finally:
            client.close()


async def _delete_stream(nc: NatsConnection, name: str) -> None:
    with contextlib.suppress(NotFoundError):
        await nc.jetstream().delete_stream(name)


def close_stray_database_sessions() -> None:
    """End the test database's other sessions: those a stopped bridge's worker threads left open.

    Django keeps one connection per thread; a bridge's pool threads are gone once it stops, but their sessions
    stay until garbage collection, and would keep the test database from being dropped at the end of the run.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
