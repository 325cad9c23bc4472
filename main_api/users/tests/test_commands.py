"""main_api's management commands: provision_streams and seed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from nats.js.errors import NotFoundError

from devstack.testing.events import Sandbox
from main_api.users.models import User

pytestmark = pytest.mark.django_db


def _run(*args: str) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_provision_streams_creates_the_stream_and_main_apis_consumer(event_stream: Sandbox) -> None:
    assert _run("provision_streams") == [
        f"stream {event_stream.stream}: created",
        f"consumer {event_stream.stream}/{event_stream.durable}: created",
    ]
    assert _run("provision_streams") == [
        f"stream {event_stream.stream}: unchanged",
        f"consumer {event_stream.stream}/{event_stream.durable}: unchanged",
    ]
    config = event_stream.consumer_info().config
    assert (config.durable_name, config.max_deliver, config.filter_subject) == (
        event_stream.durable,
        3,
        f"{event_stream.prefix}.>",
    )


def test_seed_creates_nothing_and_says_what_is_missing(event_stream: Sandbox) -> None:
    assert _run("seed") == [
        "users: nothing to seed; the read model is filled from the auth service's identity events",
        "admin account: not seeded (SEED_ADMIN_ACCOUNT is off)",
        f"stream {event_stream.stream}: missing; run `manage_main.py provision_streams`",
    ]
    assert User.objects.count() == 0
    with pytest.raises(NotFoundError):
        event_stream.stream_info()


def test_seed_reports_the_stream_and_consumer_once_provisioned(event_stream: Sandbox) -> None:
    event_stream.provision()
    event_stream.publish_event(event_type="auth.user.registered", data={"id": "00000000-0000-0000-0000-000000000001"})

    assert _run("seed")[2:] == [
        f"stream {event_stream.stream}: present, 1 message(s)",
        f"consumer {event_stream.durable}: present, 1 pending, 0 in flight",
    ]
    assert User.objects.count() == 0


def test_seed_creates_the_development_admin_account_once_and_never_changes_it(event_stream: Sandbox) -> None:
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    with override_settings(SEED_ADMIN_ACCOUNT=True, SEED_ADMIN_USERNAME="devadmin", SEED_PASSWORD="Seeded-Pass-123!"):
        assert _run("seed")[1] == "admin account devadmin: created"
        account = get_user_model().objects.get(username="devadmin")
        assert (account.is_staff, account.is_superuser) == (True, True)
        assert account.check_password("Seeded-Pass-123!")
        account.set_password("Changed-By-Operator-1!")
        account.save()
        assert _run("seed")[1] == "admin account devadmin: present (left as it is)"
    assert get_user_model().objects.get(username="devadmin").check_password("Changed-By-Operator-1!")
    assert User.objects.count() == 0


def test_seed_creates_no_admin_account_without_an_initial_password(event_stream: Sandbox) -> None:
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    with override_settings(SEED_ADMIN_ACCOUNT=True, SEED_ADMIN_USERNAME="devadmin", SEED_PASSWORD=None):
        assert _run("seed")[1] == "admin account: not seeded (no SEED_PASSWORD; use `manage_main.py createsuperuser`)"
    assert not get_user_model().objects.filter(username="devadmin").exists()
