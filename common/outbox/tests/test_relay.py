"""The outbox relay against real PostgreSQL and a real JetStream stream (a private one per test)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import orjson
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from nats.js.errors import NotFoundError

from common.contracts import events
from common.messaging.client import open_connection
from common.messaging.jetstream import MSG_ID_HEADER
from common.outbox.models import OutboxEvent
from common.outbox.relay import LocalRelay, relay_pending, relay_wake_local
from common.outbox.services import outbox_claim
from common.outbox.tests.factories import append_event
from devstack.testing.events import Sandbox, event_stream_sandbox

pytestmark = pytest.mark.django_db(transaction=True)

DOWN_URL = "nats://127.0.0.1:1"


@pytest.fixture
def stream() -> Iterator[Sandbox]:
    with event_stream_sandbox() as sandbox:
        sandbox.provision()
        yield sandbox


def _msg_ids(stream: Sandbox) -> list[str]:
    return [m.headers[MSG_ID_HEADER] for m in stream.messages()]


def test_relay_publishes_each_pending_row_once_with_its_event_id_and_marks_it_published(stream: Sandbox) -> None:
    first = append_event(event_type=events.USER_REGISTERED)
    second = append_event(event_type=events.USER_VERIFIED)

    with stream.wire_tap() as wire:
        assert relay_pending() == 2
        assert relay_pending() == 0

    assert len(wire) == 2
    stored = stream.messages()
    assert [m.headers[MSG_ID_HEADER] for m in stored] == [str(first.event_id), str(second.event_id)]
    assert [m.subject for m in stored] == [f"{stream.prefix}.registered", f"{stream.prefix}.verified"]
    body = orjson.loads(stored[0].data)
    assert body == {
        "id": str(first.event_id),
        "type": events.USER_REGISTERED,
        "aggregateId": str(first.aggregate_id),
        "occurredAt": body["occurredAt"],
        "data": first.payload,
    }
    for row in OutboxEvent.objects.all():
        assert row.published_at is not None
        assert (row.attempts, row.last_error, row.claimed_until, row.claim_token) == (0, "", None, None)


def test_events_of_one_aggregate_reach_the_stream_in_commit_order(stream: Sandbox) -> None:
    busy, quiet = uuid.uuid4(), uuid.uuid4()
    rows = [append_event(busy, version=v) for v in range(1, 6)] + [append_event(quiet)]
    rows.append(append_event(busy, version=6))

    assert relay_pending(batch_size=50) == 7

    expected = [str(r.event_id) for r in rows if r.aggregate_id == busy]
    assert [i for i in _msg_ids(stream) if i in expected] == expected


def test_batches_claimed_while_the_previous_one_is_in_flight_keep_each_aggregate_in_order(stream: Sandbox) -> None:
    aggregates = [uuid.uuid4() for _ in range(7)]
    rows = [append_event(aggregates[n % 7 if n % 3 else 0], version=n + 1) for n in range(300)]

    with stream.wire_tap() as wire:
        assert relay_pending(batch_size=20) == 300

    assert len(wire) == 300
    stored = _msg_ids(stream)
    assert sorted(stored) == sorted(str(r.event_id) for r in rows)
    for aggregate in aggregates:
        expected = [str(r.event_id) for r in rows if r.aggregate_id == aggregate]
        assert [i for i in stored if i in set(expected)] == expected
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 0


def test_two_relays_at_once_publish_every_row_exactly_once_and_in_order(stream: Sandbox) -> None:
    aggregates = [uuid.uuid4() for _ in range(50)]
    rows = [append_event(aggregates[n % 50], version=n // 50 + 1) for n in range(1000)]
    start = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def relay(url: str) -> None:
        try:
            start.wait()
            counts.append(relay_pending(batch_size=50, nats_url=url))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own database connection

    # Two URLs for one server: two separate NATS connections, as two relay processes would have.
    urls = (settings.NATS_URL, settings.NATS_URL.replace("127.0.0.1", "localhost"))
    with stream.wire_tap() as wire:
        threads = [threading.Thread(target=relay, args=(url,)) for url in urls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert errors == []
    assert sum(counts) == 1000
    on_wire = [m.headers[MSG_ID_HEADER] for m in wire]
    assert len(on_wire) == 1000  # not one duplicate publish, before any deduplication
    assert sorted(on_wire) == sorted(str(r.event_id) for r in rows)
    assert stream.stream_info().state.messages == 1000
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 0
    stored = _msg_ids(stream)
    for aggregate in aggregates:
        expected = [str(r.event_id) for r in rows if r.aggregate_id == aggregate]
        assert [i for i in stored if i in set(expected)] == expected


@override_settings(OUTBOX_RETRY_BASE_SECONDS=0.5, OUTBOX_RETRY_MAX_SECONDS=1.0)
def test_nats_down_leaves_rows_pending_with_backoff_and_they_go_out_when_it_answers(stream: Sandbox) -> None:
    rows = [append_event(email="private-address@example.com") for _ in range(3)]

    before = timezone.now()
    assert relay_pending(nats_url=DOWN_URL) == 0

    assert stream.stream_info().state.messages == 0
    for row in OutboxEvent.objects.all():
        assert row.published_at is None
        assert row.attempts == 1
        assert row.next_attempt_at is not None and row.next_attempt_at > before
        assert row.claimed_until is None and row.claim_token is None
        assert "Messaging is unavailable" in row.last_error
        assert "private-address" not in row.last_error
    # Not due yet: a healthy NATS changes nothing until the backoff has passed.
    assert relay_pending() == 0
    assert stream.stream_info().state.messages == 0

    time.sleep(0.6)
    assert relay_pending() == 3
    assert _msg_ids(stream) == [str(r.event_id) for r in rows]
    assert list(OutboxEvent.objects.values_list("attempts", "last_error", "next_attempt_at")) == [(1, "", None)] * 3


def test_without_a_stream_rows_stay_pending_and_nothing_is_stored() -> None:
    with event_stream_sandbox() as unprovisioned:
        row = append_event()

        assert relay_pending() == 0

        row.refresh_from_db()
        assert (row.published_at, row.attempts, row.last_error) == (None, 1, "no stream is bound to this subject")
        with pytest.raises(NotFoundError):
            unprovisioned.stream_info()


@override_settings(OUTBOX_RETRY_BASE_SECONDS=30.0)
def test_a_failing_row_holds_back_only_its_own_aggregate(stream: Sandbox) -> None:
    stream.limit_message_size(2048)
    blocked = uuid.uuid4()
    too_big = append_event(blocked, name="x" * 4000)
    behind = append_event(blocked, version=2)
    other = append_event()

    assert relay_pending() == 1

    assert _msg_ids(stream) == [str(other.event_id)]
    too_big.refresh_from_db()
    assert (too_big.published_at, too_big.attempts) == (None, 1)
    assert "maximum" in too_big.last_error and "xxxx" not in too_big.last_error
    behind.refresh_from_db()
    # Held back without being attempted, and still held back on the next runs while its predecessor waits.
    assert (behind.published_at, behind.attempts, behind.claim_token) == (None, 0, None)
    assert relay_pending() == 0

    # The operator raises the limit and the backoff passes: both go, in order.
    stream.limit_message_size(-1)
    OutboxEvent.objects.filter(pk=too_big.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert relay_pending() == 2
    assert _msg_ids(stream) == [str(other.event_id), str(too_big.event_id), str(behind.event_id)]


def test_rows_leased_by_a_live_relay_are_skipped_and_taken_over_when_the_lease_runs_out(stream: Sandbox) -> None:
    aggregate = uuid.uuid4()
    first = append_event(aggregate)
    claim = outbox_claim(batch_size=10, lease_seconds=30)  # a relay that died after claiming
    assert [e.id for e in claim.events] == [first.id]
    later = append_event(aggregate, version=2)

    assert relay_pending() == 0  # neither the leased row nor the event behind it
    assert stream.stream_info().state.messages == 0

    OutboxEvent.objects.filter(pk=first.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert relay_pending() == 2
    assert _msg_ids(stream) == [str(first.event_id), str(later.event_id)]


def test_a_republished_row_is_deduplicated_by_the_stream(stream: Sandbox) -> None:
    row = append_event()
    assert relay_pending() == 1
    # As if the relay had died between the PubAck and marking the row.
    OutboxEvent.objects.filter(pk=row.pk).update(published_at=None)

    assert relay_pending() == 1

    assert stream.stream_info().state.messages == 1


def test_relay_outbox_command_publishes_once(stream: Sandbox) -> None:
    append_event()
    append_event()
    out = StringIO()

    call_command("relay_outbox", stdout=out)

    assert out.getvalue().strip() == "published 2 event(s)"
    assert stream.stream_info().state.messages == 2


def test_relay_outbox_loop_keeps_relaying_until_sigterm(stream: Sandbox) -> None:
    append_event()

    def append_from_another_thread() -> None:
        try:
            append_event()
        finally:
            connection.close()

    late = threading.Timer(0.5, append_from_another_thread)
    stop = threading.Timer(1.5, os.kill, args=(os.getpid(), signal.SIGTERM))
    previous = signal.getsignal(signal.SIGTERM)
    out = StringIO()
    late.start()
    stop.start()
    try:
        started = time.monotonic()
        call_command("relay_outbox", "--loop", "--interval", "0.1", stdout=out)
        elapsed = time.monotonic() - started
    finally:
        late.join()
        stop.join()

    assert out.getvalue().strip().splitlines() == ["relaying until SIGTERM", "stopped; published 2 event(s)"]
    assert elapsed < 3.0
    assert signal.getsignal(signal.SIGTERM) is previous
    assert stream.stream_info().state.messages == 2


class _RunningLocalRelay:
    """A LocalRelay on an event loop and NATS connection of its own, as in a bridge process."""

    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        async def main() -> None:
            nc = await open_connection(settings.NATS_URL, name="pytest-relay")
            try:
                await self.relay(nc, self.stop, None)
            finally:
                await nc.close()

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.loop.close()
            connection.close()

    def __enter__(self) -> _RunningLocalRelay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


def _wait_for(predicate: Any, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - started


def test_the_in_process_relay_publishes_what_was_pending_then_each_commit_it_is_woken_for(stream: Sandbox) -> None:
    pending = append_event()
    assert relay_wake_local() is False  # no relay in this process yet

    # Idle polling far away: only the start and the wake-ups can make it relay within the test.
    with _RunningLocalRelay(LocalRelay(idle_seconds=60)) as running:
        _wait_for(lambda: stream.stream_info().state.messages == 1)
        later = [append_event(), append_event()]
        time.sleep(0.2)
        assert stream.stream_info().state.messages == 1  # committed, but nobody woke the relay

        assert relay_wake_local() is True
        elapsed = _wait_for(lambda: stream.stream_info().state.messages == 3)

    assert running.errors == []
    assert not running.thread.is_alive()
    assert elapsed < 1.0
    assert relay_wake_local() is False  # unregistered when it stopped
    assert _msg_ids(stream) == [str(r.event_id) for r in [pending, *later]]
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 0


def test_the_in_process_relay_keeps_going_while_batches_come_back_full(stream: Sandbox) -> None:
    rows = [append_event() for _ in range(25)]

    with _RunningLocalRelay(LocalRelay(batch_size=2, idle_seconds=60)) as running:
        _wait_for(lambda: OutboxEvent.objects.filter(published_at__isnull=True).count() == 0)

    assert running.errors == []
    assert _msg_ids(stream) == [str(r.event_id) for r in rows]


def test_provision_streams_creates_then_leaves_alone_then_updates() -> None:
    with event_stream_sandbox() as sandbox:
        out = StringIO()
        call_command("provision_streams", stdout=out)
        assert out.getvalue().splitlines() == [
            f"stream {sandbox.stream}: created",
            f"consumer {sandbox.stream}/{sandbox.durable}: created",
        ]
        info = sandbox.stream_info().config
        assert (info.subjects, info.storage, info.discard, info.duplicate_window) == (
            [f"{sandbox.prefix}.>"],
            "file",
            "old",
            120.0,
        )
        consumer = sandbox.consumer_info().config
        assert (consumer.ack_policy, consumer.max_deliver, consumer.filter_subject, consumer.backoff) == (
            "explicit",
            5,
            f"{sandbox.prefix}.>",
            [30.0, 60.0, 120.0, 240.0],
        )

        out = StringIO()
        call_command("provision_streams", stdout=out)
        assert out.getvalue().splitlines() == [
            f"stream {sandbox.stream}: unchanged",
            f"consumer {sandbox.stream}/{sandbox.durable}: unchanged",
        ]

        with override_settings(USER_EVENTS_MAX_AGE_SECONDS=3600.0, USER_EVENTS_MAX_DELIVER=7):
            out = StringIO()
            call_command("provision_streams", stdout=out)
            assert out.getvalue().splitlines() == [
                f"stream {sandbox.stream}: updated",
                f"consumer {sandbox.stream}/{sandbox.durable}: updated",
            ]
        assert sandbox.stream_info().config.max_age == 3600.0
        assert sandbox.consumer_info().config.max_deliver == 7


def test_provision_streams_in_a_producing_project_creates_only_the_stream() -> None:
    with event_stream_sandbox(USER_EVENTS_DURABLE=None) as sandbox:
        out = StringIO()
        call_command("provision_streams", stdout=out)
        assert out.getvalue().splitlines() == [f"stream {sandbox.stream}: created"]
