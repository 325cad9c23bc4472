"""Password recovery: no enumeration, single-use expiring tokens, and a reset that ends every session."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from django.core import mail
from django.utils import timezone
from django_redis import get_redis_connection

from auth_service.accounts.models import RecoveryToken, User
from auth_service.accounts.policies import STRENGTH_RULE_MESSAGE
from auth_service.accounts.tests.conftest import AuthApi, mailed_recovery_token
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from common.contracts import events, subjects
from common.contracts.sessions import session_key
from common.outbox.models import OutboxEvent
from devstack.testing.envelopes import envelope

NEW_PASSWORD = "Brand-New-Secret-42"
INVALID = envelope(400, "Invalid or expired recovery token", "bad_request")


def timed(auth: AuthApi, slug: str) -> tuple[object, float]:
    started = time.perf_counter()
    reply = auth(subjects.AUTH_RECOVER, {"slug": slug})
    return reply, time.perf_counter() - started


def test_recover_answers_the_same_in_similar_time_and_mails_only_an_existing_account(
    auth: AuthApi, settings: object
) -> None:
    user = UserFactory()

    known_reply, known_time = timed(auth, user.username)
    unknown_reply, unknown_time = timed(auth, f"nobody-{uuid.uuid4().hex}@example.com")

    assert known_reply is None
    assert unknown_reply is None
    floor = settings.RECOVERY_MIN_DURATION_SECONDS  # type: ignore[attr-defined]
    assert known_time >= floor
    assert unknown_time >= floor
    assert abs(known_time - unknown_time) < 0.1
    assert [(m.to, m.subject) for m in mail.outbox] == [([user.email], "Reset your password")]
    record = RecoveryToken.objects.get()
    assert record.user_id == user.id
    assert record.token_hash != mailed_recovery_token()
    assert len(mailed_recovery_token()) >= 43
    assert OutboxEvent.objects.count() == 0


def test_recover_mails_nothing_to_an_inactive_account(auth: AuthApi) -> None:
    user = UserFactory(is_active=False)

    assert auth(subjects.AUTH_RECOVER, {"slug": user.email}) is None

    assert mail.outbox == []
    assert RecoveryToken.objects.count() == 0


def test_reset_sets_the_password_ends_every_session_and_writes_password_changed(auth: AuthApi) -> None:
    user = UserFactory()
    laptop = auth.login(user.email)
    phone = auth.login(user.email)
    auth(subjects.AUTH_RECOVER, {"slug": user.email})

    assert (
        auth(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": mailed_recovery_token(), "password": NEW_PASSWORD}) is None
    )

    redis = get_redis_connection("default")
    assert not redis.exists(session_key(laptop["sessionId"]))
    assert not redis.exists(session_key(phone["sessionId"]))
    assert auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": laptop["refreshToken"]}).status == 401
    assert auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD}).status == 401
    assert "accessToken" in auth.login(user.email, NEW_PASSWORD)
    event = OutboxEvent.objects.get()
    assert (event.event_type, event.aggregate_id, event.payload["version"]) == (
        events.USER_PASSWORD_CHANGED,
        user.id,
        2,
    )
    assert RecoveryToken.objects.get().used_at is not None


def test_a_recovery_token_works_once(auth: AuthApi) -> None:
    user = UserFactory()
    auth(subjects.AUTH_RECOVER, {"slug": user.email})
    token = mailed_recovery_token()
    auth(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": token, "password": NEW_PASSWORD})

    err = auth.error(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": token, "password": "Another-Secret-43"})

    assert err.to_body() == INVALID
    assert OutboxEvent.objects.count() == 1


def test_a_newer_recovery_token_replaces_the_older_one(auth: AuthApi) -> None:
    user = UserFactory()
    auth(subjects.AUTH_RECOVER, {"slug": user.email})
    first = mailed_recovery_token()
    auth(subjects.AUTH_RECOVER, {"slug": user.email})

    assert (
        auth.error(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": first, "password": NEW_PASSWORD}).to_body()
        == INVALID
    )
    assert (
        auth(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": mailed_recovery_token(), "password": NEW_PASSWORD}) is None
    )


def test_unknown_and_expired_tokens_are_400_and_change_nothing(auth: AuthApi) -> None:
    user = UserFactory()
    auth(subjects.AUTH_RECOVER, {"slug": user.email})
    RecoveryToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = auth.error(
        subjects.AUTH_RESET_PASSWORD, {"recoveryToken": mailed_recovery_token(), "password": NEW_PASSWORD}
    )
    unknown = auth.error(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": "not-a-token", "password": NEW_PASSWORD})

    assert expired.to_body() == unknown.to_body() == INVALID
    assert User.objects.get().password == user.password
    assert OutboxEvent.objects.count() == 0


def test_a_weak_password_is_400_and_keeps_the_token_usable(auth: AuthApi) -> None:
    user = UserFactory()
    auth(subjects.AUTH_RECOVER, {"slug": user.email})
    token = mailed_recovery_token()

    err = auth.error(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": token, "password": "short"})

    assert (err.status, err.fields) == (400, {"password": [STRENGTH_RULE_MESSAGE]})
    assert OutboxEvent.objects.count() == 0
    assert auth(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": token, "password": NEW_PASSWORD}) is None
