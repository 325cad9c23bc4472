"""user_apply_event: versions, tombstones, idempotency and validation, against real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from common.contracts import events
from common.inbox.models import InboxMessage
from main_api.users.events import InvalidEvent
from main_api.users.models import User
from main_api.users.selectors import user_get, user_list
from main_api.users.services import ApplyOutcome, user_apply_event
from main_api.users.tests.factories import UserEventFactory

pytestmark = pytest.mark.django_db


def apply(event_type: str, payload: dict[str, Any], message_id: str | None = None) -> ApplyOutcome:
    return user_apply_event(event_type=event_type, payload=payload, message_id=message_id or str(uuid.uuid4()))


def test_registered_creates_the_user_with_the_auth_services_id() -> None:
    payload = UserEventFactory(
        name="Ada Lovelace",
        username="ada",
        email="ada@example.com",
        roles=["user", "admin"],
        verifiedAccount=True,
        createdAt="2026-03-01T10:00:00.123000+00:00",
        updatedAt="2026-03-02T11:00:00Z",
    )

    assert apply(events.USER_REGISTERED, payload, "m-1") is ApplyOutcome.APPLIED

    user = User.objects.get()
    assert str(user.id) == payload["id"]
    assert (user.name, user.username, user.email, user.roles) == (
        "Ada Lovelace",
        "ada",
        "ada@example.com",
        ["user", "admin"],
    )
    assert (user.is_verified, user.is_active, user.version, user.is_deleted) == (True, True, 1, False)
    assert user.created_at == datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert user.updated_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert list(InboxMessage.objects.values_list("message_id", "subject")) == [("m-1", events.USER_REGISTERED)]


def test_the_same_message_twice_changes_nothing() -> None:
    payload = UserEventFactory()
    apply(events.USER_REGISTERED, payload, "m-1")

    assert apply(events.USER_UPDATED, {**payload, "name": "Changed", "version": 2}, "m-1") is ApplyOutcome.DUPLICATE

    assert User.objects.get().name == payload["name"]
    assert InboxMessage.objects.count() == 1


def test_a_newer_version_wins_and_an_older_one_changes_nothing() -> None:
    payload = UserEventFactory()
    apply(events.USER_REGISTERED, payload)
    assert apply(events.USER_UPDATED, {**payload, "name": "Third", "version": 3}) is ApplyOutcome.APPLIED

    assert apply(events.USER_UPDATED, {**payload, "name": "Second", "version": 2}) is ApplyOutcome.STALE
    assert apply(events.USER_UPDATED, {**payload, "name": "Third again", "version": 3}) is ApplyOutcome.STALE

    user = User.objects.get()
    assert (user.name, user.version) == ("Third", 3)
    assert InboxMessage.objects.count() == 4  # a stale event is still processed: its redelivery is a no-op


def test_deletion_leaves_a_tombstone_without_personal_data_that_older_events_cannot_revive() -> None:
    payload = UserEventFactory(version=2)
    apply(events.USER_UPDATED, payload)

    assert apply(events.USER_DELETED, {"id": payload["id"], "version": 3}) is ApplyOutcome.DELETED
    assert apply(events.USER_UPDATED, {**payload, "version": 2}) is ApplyOutcome.STALE
    assert apply(events.USER_REGISTERED, {**payload, "version": 1}) is ApplyOutcome.STALE

    tomb = User.objects.get()
    assert (tomb.is_deleted, tomb.version, tomb.name, tomb.username, tomb.email, tomb.roles) == (
        True,
        3,
        "",
        "",
        "",
        [],
    )
    assert tomb.created_at == datetime.fromisoformat(payload["createdAt"])
    assert user_get(user_id=tomb.id) is None
    assert user_list(limit=10, offset=0) == (0, "[]")


def test_a_deletion_arriving_before_the_user_still_wins() -> None:
    payload = UserEventFactory(version=1)

    assert apply(events.USER_DELETED, {"id": payload["id"], "version": 2}) is ApplyOutcome.DELETED
    assert apply(events.USER_REGISTERED, payload) is ApplyOutcome.STALE

    assert list(User.objects.values_list("is_deleted", "version")) == [(True, 2)]


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


VALID = UserEventFactory.build()


@pytest.mark.parametrize(
    ("event_type", "payload", "message"),
    [
        ("auth.user.exploded", VALID, "unknown event type"),
        (events.USER_UPDATED, {**VALID, "id": "not-a-uuid"}, "id must be a UUID"),
        (events.USER_UPDATED, _without(VALID, "version"), "version is required"),
        (events.USER_UPDATED, {**VALID, "version": 0}, "version must be an integer >= 1"),
        (events.USER_UPDATED, {**VALID, "version": True}, "version must be an integer"),
        (events.USER_UPDATED, {**VALID, "name": None}, "name must be a string"),
        (events.USER_UPDATED, {**VALID, "name": "x" * 151}, "name must be a string of length <= 150"),
        (events.USER_UPDATED, {**VALID, "username": "nul\x00byte"}, "username is not valid"),
        (events.USER_UPDATED, {**VALID, "roles": "admin"}, "roles must be an array"),
        (events.USER_UPDATED, {**VALID, "verifiedAccount": "yes"}, "verifiedAccount must be a boolean"),
        (events.USER_UPDATED, {**VALID, "createdAt": "yesterday"}, "createdAt is not valid"),
        (events.USER_DELETED, {"id": VALID["id"]}, "version is required"),
    ],
)
def test_an_invalid_event_is_refused_before_anything_is_written(
    event_type: str, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        apply(event_type, payload)

    assert message in str(info.value)
    assert User.objects.count() == 0
    assert InboxMessage.objects.count() == 0
