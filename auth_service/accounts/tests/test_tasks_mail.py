"""Celery tasks, the outbox kick, mail after commit, the development mail backend and the clean-up command."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path
from smtplib import SMTPException
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from auth_service import tasks
from auth_service.accounts.mail import DevMailBackend, seal, unseal
from auth_service.accounts.models import RecoveryToken, User, VerificationCode
from auth_service.accounts.services import registration, signing_keys
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from common.outbox import relay


def test_dev_mail_backend_prints_and_writes_one_eml_file_per_message(tmp_path: Path, settings: Any) -> None:
    settings.EMAIL_FILE_PATH = str(tmp_path / "var" / "mail")
    console = io.StringIO()
    backend = DevMailBackend(stream=console)
    messages = [
        mail.EmailMessage("Your verification code", "code 123456", "from@example.com", ["Some.One@example.com"]),
        mail.EmailMessage("Second", "body two", "from@example.com", ["Some.One@example.com"]),
        mail.EmailMessage("Sneaky", "body three", "from@example.com", ["../../etc/passwd@example.com"]),
    ]

    assert backend.send_messages(messages) == 3

    files = sorted((tmp_path / "var" / "mail").iterdir())
    assert len(files) == 3
    assert all(f.parent == tmp_path / "var" / "mail" and f.suffix == ".eml" for f in files)
    names = sorted(f.name.split("-", 1)[1] for f in files)
    assert names[0] == "Some.One@example.com.eml"
    assert names[1] in {"Some.One@example.com.eml", "Some.One@example.com-1.eml"}
    assert names[2] == "____etc_passwd@example.com.eml"
    contents = b"".join(f.read_bytes() for f in files)
    assert b"Subject: Your verification code" in contents
    assert b"code 123456" in contents
    assert "code 123456" in console.getvalue()


def test_mail_bodies_travel_sealed(settings: Any) -> None:
    sealed = seal("your verification code is 123456")

    assert "123456" not in sealed
    assert unseal(sealed) == "your verification code is 123456"
    # A rotated SECRET_KEY still opens what was sealed with the previous one.
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-for-this-test-0123456789abcdef"
    assert unseal(sealed) == "your verification code is 123456"


def test_send_mail_task_retries_smtp_and_network_errors() -> None:
    assert tasks.send_mail.autoretry_for == (SMTPException, OSError)
    assert tasks.send_mail.max_retries == 8
    assert tasks.send_mail.retry_backoff == 5


def test_send_mail_task_delivers_after_a_transient_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def flaky(subject: str, body: str, sender: None, to: list[str], fail_silently: bool) -> int:
        calls.append((to[0], body))
        if len(calls) == 1:
            raise SMTPException("421 try later")
        return 1

    monkeypatch.setattr(tasks.mail, "send_mail", flaky)

    tasks.send_mail.apply(kwargs={"to": "a@example.com", "subject": "s", "sealed_body": seal("b")})

    assert calls == [("a@example.com", "b"), ("a@example.com", "b")]


def test_kick_relay_enqueues_the_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    kicked: list[bool] = []
    monkeypatch.setattr(tasks.relay_outbox, "apply_async", lambda **options: kicked.append(options["retry"]))

    tasks.kick_relay()

    assert kicked == [False]


def test_kick_relay_wakes_the_in_process_relay_instead_of_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    kicked: list[bool] = []
    woken: list[bool] = []
    monkeypatch.setattr(tasks.relay_outbox, "apply_async", lambda **options: kicked.append(options["retry"]))
    monkeypatch.setattr(relay, "_local_wakers", [lambda: woken.append(True)])

    tasks.kick_relay()

    assert (woken, kicked) == ([True], [])


def test_kick_relay_swallows_and_logs_a_broker_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**options: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.relay_outbox, "apply_async", broken)

    with caplog.at_level(logging.WARNING, logger="auth_service.tasks"):
        tasks.kick_relay()

    assert [r.getMessage() for r in caplog.records] == [
        "could not enqueue the outbox relay; the periodic relay will publish"
    ]


def test_relay_outbox_task_runs_the_common_relay(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    from common.outbox import relay

    seen: list[int] = []

    def fake_relay_pending(*, batch_size: int) -> int:
        seen.append(batch_size)
        return 7

    monkeypatch.setattr(relay, "relay_pending", fake_relay_pending)

    assert tasks.relay_outbox.apply().get() == 7
    assert seen == [settings.OUTBOX_BATCH_SIZE]


@pytest.mark.django_db(transaction=True)
def test_an_identity_change_kicks_the_relay_once_after_commit(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.OUTBOX_KICK = "auth_service.tasks.kick_relay"
    kicked: list[bool] = []
    monkeypatch.setattr(tasks.relay_outbox, "apply_async", lambda **options: kicked.append(True))

    registration.user_register(name="Jane Doe", username="janedoe", email="jane@example.com", password=PASSWORD)

    assert kicked == [True]
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_no_mail_leaves_when_the_transaction_rolls_back() -> None:
    user = UserFactory(is_verified=False)

    with pytest.raises(RuntimeError), transaction.atomic():
        registration.verification_resend(email=user.email)
        raise RuntimeError("rolled back")

    assert mail.outbox == []
    assert VerificationCode.objects.count() == 0


@pytest.mark.django_db
def test_purge_expired_deletes_spent_and_expired_codes_and_tokens() -> None:
    user = UserFactory()
    past, future = timezone.now() - timedelta(minutes=1), timezone.now() + timedelta(minutes=5)
    VerificationCode.objects.create(user=user, code_hash="a" * 64, expires_at=past)
    VerificationCode.objects.create(user=user, code_hash="b" * 64, expires_at=future, used_at=timezone.now())
    kept_code = VerificationCode.objects.create(user=user, code_hash="c" * 64, expires_at=future)
    RecoveryToken.objects.create(user=user, token_hash="d" * 64, expires_at=past)
    kept_token = RecoveryToken.objects.create(user=user, token_hash="e" * 64, expires_at=future)
    output = io.StringIO()

    call_command("purge_expired", stdout=output)

    assert output.getvalue() == "verification_codes: 2, recovery_tokens: 1, signing_keys: 0, security_events: 0\n"
    assert list(VerificationCode.objects.values_list("pk", flat=True)) == [kept_code.pk]
    assert list(RecoveryToken.objects.values_list("pk", flat=True)) == [kept_token.pk]
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_rotate_signing_keys_task_rotates_only_a_key_that_is_due() -> None:
    active = signing_keys.signing_key_ensure_active()

    tasks.rotate_signing_keys.apply()

    assert signing_keys.signing_key_ensure_active().kid == active.kid
