"""Identity events reaching the read model through main_api's real bridge and a real JetStream stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from common.contracts import events
from common.inbox.models import DeadLetter, InboxMessage
from devstack.testing.events import Sandbox, event_stream_sandbox
from devstack.testing.plugin import bridge_in_thread
from main_api.conftest import FAST_EVENTS
from main_api.users.models import User
from main_api.users.tests.factories import UserEventFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def _settled(stream: Sandbox) -> bool:
    info = stream.consumer_info()
    return info.num_pending == 0 and info.num_ack_pending == 0


def _publish(stream: Sandbox, event_type: str, payload: dict[str, Any], message_id: str | None = None) -> str:
    message_id = message_id or str(uuid.uuid4())
    stream.publish_event(event_type=event_type, data=payload, message_id=message_id)
    return message_id


def test_the_bridge_provisions_its_consumer_and_applies_events(event_stream: Sandbox) -> None:
    payload = UserEventFactory(name="Grace Hopper")

    with bridge_in_thread(service="main"):
        _wait_for(lambda: _consumer_exists(event_stream))
        _publish(event_stream, events.USER_REGISTERED, payload)
        _wait_for(lambda: User.objects.filter(name="Grace Hopper").exists())
        _wait_for(lambda: _settled(event_stream))

    assert str(User.objects.get().id) == payload["id"]


def _consumer_exists(stream: Sandbox) -> bool:
    try:
        stream.consumer_info()
    except Exception:
        return False
    return True


def test_events_out_of_order_end_in_the_newest_state(event_stream: Sandbox) -> None:
    event_stream.provision()
    base = UserEventFactory()
    _publish(event_stream, events.USER_ROLES_CHANGED, {**base, "roles": ["admin"], "version": 3})
    _publish(event_stream, events.USER_REGISTERED, {**base, "version": 1})
    _publish(event_stream, events.USER_VERIFIED, {**base, "verifiedAccount": True, "version": 2})

    with bridge_in_thread(service="main"):
        _wait_for(lambda: InboxMessage.objects.count() == 3)
        _wait_for(lambda: _settled(event_stream))

    user = User.objects.get()
    assert (user.roles, user.is_verified, user.version) == (["admin"], False, 3)


def test_the_same_event_delivered_three_times_is_applied_once() -> None:
    # A 100 ms duplicate window lets one Nats-Msg-Id be stored three times: three genuine deliveries.
    with event_stream_sandbox(USER_EVENTS_DUPLICATE_WINDOW_SECONDS=0.1, **FAST_EVENTS) as stream:
        stream.provision()
        payload = UserEventFactory()
        message_id = str(uuid.uuid4())
        for name in ("First", "Second", "Third"):
            _publish(stream, events.USER_UPDATED, {**payload, "name": name, "version": 1}, message_id)
            time.sleep(0.15)
        assert stream.stream_info().state.messages == 3

        with bridge_in_thread(service="main"):
            _wait_for(lambda: stream.consumer_info().delivered.stream_seq == 3)
            _wait_for(lambda: _settled(stream))

    assert User.objects.get().name == "First"
    assert list(InboxMessage.objects.values_list("message_id", flat=True)) == [message_id]


def test_a_deleted_user_is_not_revived_by_an_older_update(event_stream: Sandbox) -> None:
    event_stream.provision()
    payload = UserEventFactory()
    _publish(event_stream, events.USER_REGISTERED, payload)
    _publish(event_stream, events.USER_DELETED, {"id": payload["id"], "version": 3})
    _publish(event_stream, events.USER_UPDATED, {**payload, "name": "Late", "version": 2})

    with bridge_in_thread(service="main"):
        _wait_for(lambda: InboxMessage.objects.count() == 3)
        _wait_for(lambda: _settled(event_stream))

    tomb = User.objects.get()
    assert (tomb.is_deleted, tomb.version, tomb.name) == (True, 3, "")


def test_a_bad_event_is_parked_at_once_and_the_next_one_applies(event_stream: Sandbox) -> None:
    event_stream.provision()
    bad = _publish(event_stream, events.USER_UPDATED, {**UserEventFactory(), "version": "seven"})
    unknown = _publish(event_stream, "auth.user.teleported", UserEventFactory())
    good = UserEventFactory()
    _publish(event_stream, events.USER_REGISTERED, good)

    with bridge_in_thread(service="main"):
        _wait_for(lambda: User.objects.exists())
        _wait_for(lambda: DeadLetter.objects.count() == 2)
        _wait_for(lambda: _settled(event_stream))

    letters = {letter.message_id: letter for letter in DeadLetter.objects.all()}
    assert (letters[bad].deliveries, letters[bad].consumer) == (1, "users")
    assert "version must be an integer" in letters[bad].error
    assert (letters[unknown].deliveries, letters[unknown].subject) == (1, f"{event_stream.prefix}.teleported")
    assert "unknown event type 'auth.user.teleported'" in letters[unknown].error
    assert list(User.objects.values_list("id", flat=True)) == [uuid.UUID(good["id"])]
    assert InboxMessage.objects.count() == 1
