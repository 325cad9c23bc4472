"""main_api's admin: the read model and the inbox are read-only; dead letters can be retried."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.contrib.auth.models import User as StaffUser
from django.test import Client

from common.contracts import events
from common.inbox.models import DeadLetter, InboxMessage
from common.inbox.services import dead_letter_park
from common.messaging.jetstream import encode_event
from devstack.testing.factories import UserEventFactory
from main_api.users.models import User
from main_api.users.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(StaffUser.objects.create_superuser("root", "root@example.com", "unused-Pa55word!"))
    return client


def _park(event_type: str, data: dict[str, object]) -> DeadLetter:
    message_id = str(uuid.uuid4())
    body = encode_event(
        event_id=uuid.UUID(message_id),
        event_type=event_type,
        aggregate_id=uuid.UUID(str(data["id"])),
        occurred_at=datetime.now(UTC),
        data=data,
    )
    return dead_letter_park(
        consumer="users",
        message_id=message_id,
        subject="auth.user.registered",
        payload=body,
        headers={"Nats-Msg-Id": message_id},
        error="RuntimeError: a bug since fixed",
        deliveries=3,
        stream_sequence=12,
    )


def test_read_model_pages_are_readable_but_not_writable(admin_client: Client) -> None:
    user = UserFactory(username="visible")
    InboxMessage.objects.create(message_id="m-1", subject="auth.user.registered")

    listing = admin_client.get("/admin/users/user/?is_active__exact=1&q=visible")
    assert listing.status_code == 200 and b"visible" in listing.content
    detail = admin_client.get(f"/admin/users/user/{user.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert admin_client.get("/admin/users/user/add/").status_code == 403
    assert admin_client.post(f"/admin/users/user/{user.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/inbox/inboxmessage/").status_code == 200
    assert admin_client.get("/admin/inbox/deadletter/?state=open").status_code == 200
    assert User.objects.get().username == "visible"


def test_retrying_a_dead_letter_applies_it_under_its_original_id(admin_client: Client) -> None:
    payload = UserEventFactory(name="Parked Person")
    letter = _park(events.USER_REGISTERED, payload)

    response = admin_client.post(
        "/admin/inbox/deadletter/", {"action": "retry", "_selected_action": [letter.pk]}, follow=True
    )

    assert response.status_code == 200
    assert b"1 message(s) applied." in response.content
    assert User.objects.get().name == "Parked Person"
    assert list(InboxMessage.objects.values_list("message_id", flat=True)) == [letter.message_id]
    letter.refresh_from_db()
    assert letter.resolved_at is not None and letter.retried_at is not None and letter.retries == 1


def test_a_retry_that_still_fails_keeps_the_letter_open_and_writes_nothing(admin_client: Client) -> None:
    letter = _park(events.USER_REGISTERED, {**UserEventFactory(), "active": "maybe"})

    response = admin_client.post(
        "/admin/inbox/deadletter/", {"action": "retry", "_selected_action": [letter.pk]}, follow=True
    )

    assert b"still failing" in response.content
    letter.refresh_from_db()
    assert (letter.resolved_at, letter.retries) == (None, 1)
    assert "active must be a boolean" in letter.error
    assert User.objects.count() == 0
    assert InboxMessage.objects.count() == 0


def test_staff_who_may_only_view_dead_letters_cannot_retry_them(client: Client) -> None:
    viewer = StaffUser.objects.create_user("viewer", "viewer@example.com", "unused-Pa55word!", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(viewer)
    letter = _park(events.USER_REGISTERED, UserEventFactory())

    assert client.get("/admin/inbox/deadletter/").status_code == 200
    client.post("/admin/inbox/deadletter/", {"action": "retry", "_selected_action": [letter.pk]})

    letter.refresh_from_db()
    assert (letter.resolved_at, letter.retries) == (None, 0)
    assert User.objects.count() == 0
