"""The JetStream consumer loop on a real bridge, real JetStream and real PostgreSQL, with a recording handler."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.test import override_settings

from common.inbox.consumer import JetStreamConsumer
from common.inbox.models import DeadLetter, InboxMessage
from common.inbox.services import InvalidMessage, dead_letter_retry, inbox_record
from common.messaging.jetstream import MSG_ID_HEADER, user_events_consumer, user_events_provision
from devstack.servers import NatsServer
from devstack.testing.events import Sandbox, event_stream_sandbox
from devstack.testing.plugin import bridge_in_thread
from devstack.testing.stack import free_port
from devstack.testing.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {
    "USER_EVENTS_MAX_DELIVER": 3,
    "USER_EVENTS_ACK_WAIT_SECONDS": 5.0,
    "USER_EVENTS_RETRY_BASE_SECONDS": 0.2,
    "USER_EVENTS_RETRY_MAX_SECONDS": 0.5,
    "USER_EVENTS_FETCH_TIMEOUT_SECONDS": 0.5,
}


class Recorder:
    """A handler that applies through the inbox and records what committed, with switchable failure modes."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.is_fixed = False

    def __call__(self, *, event_type: str, payload: dict[str, Any], message_id: str) -> str:
        with self.lock:
            self.calls[message_id] = self.calls.get(message_id, 0) + 1
            calls = self.calls[message_id]
        mode = payload.get("mode")
        if mode == "bug" and not self.is_fixed:
            raise RuntimeError("handler bug")
        if mode == "invalid" and not self.is_fixed:
            raise InvalidMessage("field x is wrong")
        if mode == "db-blip" and calls == 1:
            raise OperationalError("server closed the connection unexpectedly")
        if mode == "db-outage" and calls <= int(payload["failures"]):
            raise OperationalError("the database system is shutting down")
        with transaction.atomic():
            if not inbox_record(message_id=message_id, subject=event_type):
                return "duplicate"
            transaction.on_commit(lambda: self.applied.append(message_id))
        return "applied"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def stream() -> Iterator[Sandbox]:
    with event_stream_sandbox(**FAST) as sandbox:
        sandbox.provision()
        yield sandbox


def _consumer(recorder: Recorder) -> JetStreamConsumer:
    return JetStreamConsumer(name="test", handler=recorder, spec=user_events_consumer, provision=user_events_provision)


def _publish(stream: Sandbox, **data: Any) -> str:
    message_id = str(uuid.uuid4())
    stream.publish_event(event_type="auth.user.updated", data={"id": str(uuid.uuid4()), **data}, message_id=message_id)
    return message_id


def test_each_message_is_applied_once_and_acked_after_commit(stream: Sandbox, recorder: Recorder) -> None:
    ids = [_publish(stream) for _ in range(20)]

    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        wait_for(lambda: len(recorder.applied) == 20)
        wait_for(stream.settled)

    assert recorder.applied == ids  # stream order
    assert set(InboxMessage.objects.values_list("message_id", flat=True)) == set(ids)
    assert DeadLetter.objects.count() == 0


def test_the_same_message_delivered_three_times_is_applied_once() -> None:
    recorder = Recorder()
    # A duplicate window this short lets the same Nats-Msg-Id be stored three times: three real deliveries.
    with event_stream_sandbox(USER_EVENTS_DUPLICATE_WINDOW_SECONDS=0.1, **FAST) as stream:
        stream.provision()
        message_id = str(uuid.uuid4())
        for _ in range(3):
            stream.publish_event(event_type="auth.user.updated", data={"id": str(uuid.uuid4())}, message_id=message_id)
            time.sleep(0.15)
        assert stream.stream_info().state.messages == 3

        with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
            wait_for(lambda: recorder.calls.get(message_id) == 3)
            wait_for(stream.settled)

    assert recorder.applied == [message_id]
    assert InboxMessage.objects.count() == 1
    assert DeadLetter.objects.count() == 0


def test_a_failing_message_is_parked_after_its_last_delivery_without_blocking_the_next(
    stream: Sandbox, recorder: Recorder
) -> None:
    poison = _publish(stream, mode="bug")
    good = _publish(stream)

    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        wait_for(lambda: recorder.applied == [good])
        assert DeadLetter.objects.count() == 0  # the good one did not wait for the poison's redeliveries
        wait_for(lambda: DeadLetter.objects.exists())
        wait_for(stream.settled)

    letter = DeadLetter.objects.get()
    assert (letter.message_id, letter.consumer, letter.deliveries) == (poison, "test", 3)
    assert letter.error == "RuntimeError: handler bug"
    assert letter.subject == f"{stream.prefix}.updated"
    assert letter.headers[MSG_ID_HEADER] == poison
    assert '"mode":"bug"' in letter.payload
    assert letter.resolved_at is None
    assert recorder.calls[poison] == 3
    assert list(InboxMessage.objects.values_list("message_id", flat=True)) == [good]


def test_bad_data_is_parked_at_once_and_nothing_is_applied(stream: Sandbox, recorder: Recorder) -> None:
    undecodable = str(uuid.uuid4())
    stream.publish_raw(f"{stream.prefix}.updated", b"\xff not json", {MSG_ID_HEADER: undecodable})
    invalid = _publish(stream, mode="invalid")
    good = _publish(stream)

    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        wait_for(lambda: recorder.applied == [good])
        wait_for(lambda: DeadLetter.objects.count() == 2)
        wait_for(stream.settled)

    letters = {letter.message_id: letter for letter in DeadLetter.objects.all()}
    assert letters[undecodable].deliveries == 1
    assert letters[undecodable].error.startswith("invalid message: body is not JSON")
    assert letters[invalid].deliveries == 1
    assert letters[invalid].error == "invalid message: field x is wrong"
    assert invalid not in recorder.calls or recorder.calls[invalid] == 1
    assert list(InboxMessage.objects.values_list("message_id", flat=True)) == [good]


def test_a_database_blip_is_retried_later_and_applied_once(stream: Sandbox, recorder: Recorder) -> None:
    blip = _publish(stream, mode="db-blip")

    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        wait_for(lambda: recorder.applied == [blip])
        wait_for(stream.settled)

    assert recorder.calls[blip] == 2
    assert DeadLetter.objects.count() == 0
    assert InboxMessage.objects.count() == 1


def test_a_database_failure_rolls_back_the_whole_batch_and_loses_none_of_it(
    stream: Sandbox, recorder: Recorder
) -> None:
    before = _publish(stream)
    blip = _publish(stream, mode="db-blip")
    after = _publish(stream)

    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        wait_for(lambda: sorted(recorder.applied) == sorted([before, blip, after]))
        wait_for(stream.settled)

    # `before` was applied in the batch that the failure rolled back, so it was applied again, once.
    assert recorder.calls[before] == 2 and recorder.calls[blip] == 2
    assert sorted(InboxMessage.objects.values_list("message_id", flat=True)) == sorted([before, blip, after])
    assert DeadLetter.objects.count() == 0


def test_a_last_delivery_during_a_database_outage_is_held_until_it_can_be_applied(
    stream: Sandbox, recorder: Recorder
) -> None:
    # Fails on all three deliveries (max_deliver=3), then the database is back: held, not parked, not lost.
    held = _publish(stream, mode="db-outage", failures=3)

    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        wait_for(lambda: recorder.applied == [held], timeout=15)
        wait_for(stream.settled)

    assert recorder.calls[held] == 4
    assert stream.consumer_info().num_redelivered == 0
    assert DeadLetter.objects.count() == 0
    assert list(InboxMessage.objects.values_list("message_id", flat=True)) == [held]


def test_the_consumer_stops_promptly_when_the_bridge_stops(stream: Sandbox, recorder: Recorder) -> None:
    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        time.sleep(0.3)
        started = time.monotonic()
    assert time.monotonic() - started < 3.0


def test_a_dead_letter_retry_applies_it_once_under_its_original_message_id(stream: Sandbox, recorder: Recorder) -> None:
    invalid = _publish(stream, mode="invalid")
    with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
        wait_for(lambda: DeadLetter.objects.exists())
    letter = DeadLetter.objects.get()

    still_failing = dead_letter_retry(letter=letter, handler=recorder)
    letter.refresh_from_db()
    assert (still_failing.is_applied, letter.retries, letter.resolved_at) == (False, 1, None)
    assert letter.retried_at is not None and letter.error == "InvalidMessage: field x is wrong"
    assert InboxMessage.objects.count() == 0

    recorder.is_fixed = True
    assert dead_letter_retry(letter=letter, handler=recorder).is_applied
    letter.refresh_from_db()
    assert letter.retries == 2 and letter.resolved_at is not None
    assert list(InboxMessage.objects.values_list("message_id", flat=True)) == [invalid]
    assert recorder.applied == [invalid]


def test_inbox_record_refuses_a_second_apply_and_keeps_the_transaction_usable() -> None:
    with transaction.atomic():
        assert inbox_record(message_id="m-1", subject="s") is True
        assert inbox_record(message_id="m-1", subject="s") is False
        assert InboxMessage.objects.count() == 1


def test_inbox_record_outside_a_transaction_is_refused() -> None:
    with pytest.raises(RuntimeError):
        inbox_record(message_id="m-1", subject="s")
    assert InboxMessage.objects.count() == 0


# -- NATS restart ------------------------------------------------------------------------------------------


class PrivateNats:
    """A JetStream server of this test's own, so it can be stopped and started without touching anyone else's."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(NatsServer.binary()), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "js")
    server.start()
    yield server
    server.stop()


def _publish_when_back(stream: Sandbox, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _publish(stream)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_consumer_survives_a_nats_restart(private_nats: PrivateNats, recorder: Recorder) -> None:
    with override_settings(NATS_URL=private_nats.url), event_stream_sandbox(**FAST) as stream:
        stream.provision()
        with bridge_in_thread(service="common", handlers={}, background=[_consumer(recorder)]):
            before = _publish(stream)
            wait_for(lambda: recorder.applied == [before])

            private_nats.stop()
            time.sleep(1.0)
            private_nats.start()

            after = _publish_when_back(stream)
            wait_for(lambda: recorder.applied == [before, after], timeout=20)
