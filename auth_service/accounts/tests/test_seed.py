"""Seeding: `manage_auth.py seed` and auth.seed are idempotent, never destructive, and emit events once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from auth_service.accounts.models import Role, User
from auth_service.accounts.tests.conftest import AuthApi
from auth_service.accounts.tests.factories import UserFactory
from common.contracts import events, subjects
from common.outbox.models import OutboxEvent

SEEDED = {
    "sys-admin@test.com": ("sysadmin", ["sys_admin"]),
    "admin@test.com": ("adminuser", ["admin"]),
    "user@test.com": ("basicuser", ["user"]),
    "guest@test.com": ("guestuser", ["guest"]),
}


@pytest.mark.django_db
def test_seed_creates_roles_and_four_verified_accounts_and_a_second_run_changes_nothing() -> None:
    output = io.StringIO()
    call_command("seed", stdout=output)

    assert output.getvalue() == "Seeded: sys-admin@test.com, admin@test.com, user@test.com, guest@test.com\n"
    assert list(Role.objects.values_list("name", "rank")) == [("guest", 0), ("user", 1), ("admin", 2), ("sys_admin", 3)]
    users = {u.email: u for u in User.objects.all()}
    assert {email: (u.username, u.roles) for email, u in users.items()} == SEEDED
    assert all(u.is_verified and u.is_active and u.check_password("Password123!") for u in users.values())
    assert sorted(OutboxEvent.objects.values_list("event_type", "payload__email")) == sorted(
        (events.USER_REGISTERED, email) for email in SEEDED
    )
    snapshot = list(User.objects.values_list("id", "password", "version", "updated_at"))

    second = io.StringIO()
    call_command("seed", stdout=second)

    assert second.getvalue() == "Nothing to seed: every account already exists.\n"
    assert list(User.objects.values_list("id", "password", "version", "updated_at")) == snapshot
    assert OutboxEvent.objects.count() == 4


@pytest.mark.django_db
def test_seed_never_touches_an_existing_account() -> None:
    existing = UserFactory(email="admin@test.com", username="adminuser", roles=["user"], is_verified=False)

    call_command("seed", stdout=io.StringIO())

    existing.refresh_from_db()
    assert (existing.roles, existing.is_verified) == (["user"], False)
    assert OutboxEvent.objects.count() == 3


def test_seed_subject_answers_ok_and_seeded_accounts_can_log_in(auth: AuthApi) -> None:
    assert auth(subjects.AUTH_SEED) == {"ok": True}
    assert auth(subjects.AUTH_SEED) == {"ok": True}

    assert User.objects.count() == 4
    assert OutboxEvent.objects.count() == 4
    _, claims = auth.decode_access(auth.login("sysadmin", "Password123!")["accessToken"])
    assert claims["roles"] == ["sys_admin"]


@pytest.mark.django_db
@pytest.mark.parametrize("password", [None, ""])
def test_without_an_initial_password_the_seed_creates_no_account(settings: Any, password: str | None) -> None:
    settings.SEED_PASSWORD = password
    output = io.StringIO()

    call_command("seed", stdout=output)

    assert output.getvalue() == (
        "Accounts not seeded: no SEED_PASSWORD (or SEED_PASSWORD_FILE) is set. "
        "Create the first account with `manage_auth.py createsuperuser`, or give an initial password.\n"
    )
    assert User.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    assert Role.objects.count() == 4


@pytest.mark.parametrize(("environ", "expected"), [({}, "None"), ({"SEED_PASSWORD": "Chosen-Pass-123!"}, "set")])
def test_production_settings_have_no_default_seed_password(environ: dict[str, str], expected: str) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SEED_PASSWORD")}
    script = "from auth_service.settings import prod; print('set' if prod.SEED_PASSWORD else prod.SEED_PASSWORD)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={
            **clean,
            "SECRET_KEY": "k" * 50,
            "REFRESH_TOKEN_SECRET": "r" * 50,
            "KEY_ENCRYPTION_KEYS": "ZGV2LWluc2VjdXJlLWtleS1lbmNyeXB0aW9uLWtleSE=",
            **environ,
        },
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, expected), result.stderr
