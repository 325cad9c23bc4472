"""Sign-up, verification and resend through the auth.* NATS subjects, against real Postgres, Redis and NATS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core import mail
from django.utils import timezone

from auth_service.accounts.models import User, VerificationCode
from auth_service.accounts.policies import STRENGTH_RULE_MESSAGE
from auth_service.accounts.tests.conftest import AuthApi, mailed_code
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from common.contracts import events, subjects
from common.outbox.models import OutboxEvent

INVALID_CODE = "Invalid or expired verification code"


def signup_data(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Jane Doe",
        "username": "janedoe2024",
        "email": "Jane.Doe@Example.com",
        "password": PASSWORD,
    } | overrides


def test_signup_creates_an_unverified_user_mails_a_code_and_writes_one_event(auth: AuthApi) -> None:
    assert auth(subjects.AUTH_SIGNUP, signup_data()) is None

    user = User.objects.get()
    assert (user.name, user.username, user.email) == ("Jane Doe", "janedoe2024", "jane.doe@example.com")
    assert (user.roles, user.is_verified, user.is_active, user.version) == (["user"], False, True, 1)
    assert user.password.startswith("argon2$argon2id$v=19$m=7168,t=5,p=1$")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["jane.doe@example.com"]
    assert mail.outbox[0].subject == "Your verification code"
    assert len(mailed_code()) == 6
    event = OutboxEvent.objects.get()
    assert (event.event_type, event.aggregate_id) == (events.USER_REGISTERED, user.id)
    assert event.payload == {
        "id": str(user.id),
        "name": "Jane Doe",
        "username": "janedoe2024",
        "email": "jane.doe@example.com",
        "roles": ["user"],
        "verifiedAccount": False,
        "active": True,
        "createdAt": user.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "updatedAt": user.updated_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "version": 1,
    }


def test_signup_with_a_registered_email_answers_the_same_and_only_notifies_the_owner(auth: AuthApi) -> None:
    owner = UserFactory(email="taken@example.com", name="Owner Person")

    assert auth(subjects.AUTH_SIGNUP, signup_data(email="TAKEN@example.com")) is None

    assert list(User.objects.values_list("id", flat=True)) == [owner.id]
    assert OutboxEvent.objects.count() == 0
    assert [(m.to, m.subject) for m in mail.outbox] == [(["taken@example.com"], "Sign-up attempt with your address")]
    assert "someone tried to sign up with your address" in mail.outbox[0].body


def test_signup_with_a_taken_username_is_409_whatever_its_case(auth: AuthApi) -> None:
    UserFactory(username="JaneDoe2024")

    err = auth.error(subjects.AUTH_SIGNUP, signup_data(username="janedoe2024"))

    assert err.status == 409
    assert err.to_body() == {
        "statusCode": 409,
        "error": "Conflict",
        "message": "Username already taken",
        "code": "conflict",
        "fields": {"username": ["Username already taken"]},
    }
    assert User.objects.count() == 1
    assert OutboxEvent.objects.count() == 0
    assert mail.outbox == []


def test_signup_with_invalid_values_is_400_with_every_field(auth: AuthApi) -> None:
    err = auth.error(
        subjects.AUTH_SIGNUP, {"name": "Jo", "username": "jane_doe", "email": "nope", "password": "password"}
    )

    assert err.status == 400
    assert err.code == "validation_failed"
    assert err.fields == {
        "name": ["Name must be 4 to 40 characters long and contain only letters and spaces"],
        "username": ["Username must be 4 to 40 characters long and contain only letters and numbers"],
        "email": ["Email must be a valid e-mail address of at most 254 characters"],
        "password": [STRENGTH_RULE_MESSAGE, "This password is too common."],
    }
    assert User.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    assert mail.outbox == []


def test_signup_password_too_similar_to_the_username_is_400(auth: AuthApi) -> None:
    err = auth.error(subjects.AUTH_SIGNUP, signup_data(username="Janedoe2024", password="Janedoe2024!"))

    assert err.status == 400
    assert err.fields == {"password": ["The password is too similar to the username."]}
    assert User.objects.count() == 0


def test_signup_with_an_unknown_property_is_400(auth: AuthApi) -> None:
    err = auth.error(subjects.AUTH_SIGNUP, signup_data(roles=["sys_admin"]))

    assert err.status == 400
    assert err.fields == {"roles": ["property roles should not exist"]}
    assert err.message == ["property roles should not exist"]
    assert User.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


def test_signup_with_missing_and_mistyped_fields_is_400(auth: AuthApi) -> None:
    mistyped = auth.error(subjects.AUTH_SIGNUP, {"name": "Jane Doe", "username": 42, "email": None})
    missing = auth.error(subjects.AUTH_SIGNUP, {"name": "Jane Doe", "username": "jane"})

    assert (mistyped.status, mistyped.fields) == (400, {"username": ["username must be a string"]})
    assert (missing.status, missing.fields) == (400, {"email": ["email is required"]})
    assert auth.error(subjects.AUTH_SIGNUP, ["not", "an", "object"]).message == ["data must be an object"]
    assert OutboxEvent.objects.count() == 0


def test_verify_with_the_mailed_code_verifies_the_account_once(auth: AuthApi) -> None:
    auth(subjects.AUTH_SIGNUP, signup_data())
    code = mailed_code()

    assert auth(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": code}) is None

    user = User.objects.get()
    assert (user.is_verified, user.version) == (True, 2)
    assert list(OutboxEvent.objects.values_list("event_type", "payload__verifiedAccount", "payload__version")) == [
        (events.USER_REGISTERED, False, 1),
        (events.USER_VERIFIED, True, 2),
    ]
    reused = auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": code})
    assert (reused.status, reused.message) == (400, INVALID_CODE)
    assert OutboxEvent.objects.count() == 2


def test_verify_with_a_wrong_code_is_400_and_counts_an_attempt(auth: AuthApi) -> None:
    auth(subjects.AUTH_SIGNUP, signup_data())
    wrong = "000000" if mailed_code() != "000000" else "111111"

    err = auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": wrong})

    assert (err.status, err.message) == (400, INVALID_CODE)
    assert VerificationCode.objects.get().attempts == 1
    assert User.objects.get().is_verified is False
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == [events.USER_REGISTERED]


def test_the_fifth_wrong_attempt_burns_the_code(auth: AuthApi) -> None:
    auth(subjects.AUTH_SIGNUP, signup_data())
    code = mailed_code()
    wrong = "000000" if code != "000000" else "111111"

    for _ in range(5):
        assert auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": wrong}).status == 400
    err = auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": code})

    assert (err.status, err.message) == (400, INVALID_CODE)
    record = VerificationCode.objects.get()
    assert record.attempts == 5
    assert record.used_at is not None
    assert User.objects.get().is_verified is False
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == [events.USER_REGISTERED]


def test_an_expired_code_is_400(auth: AuthApi) -> None:
    auth(subjects.AUTH_SIGNUP, signup_data())
    VerificationCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    err = auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": mailed_code()})

    assert (err.status, err.message) == (400, INVALID_CODE)
    assert User.objects.get().is_verified is False
    assert OutboxEvent.objects.count() == 1


def test_the_code_expires_after_ten_minutes() -> None:
    from django.conf import settings

    assert settings.VERIFICATION_CODE_TTL_SECONDS == 600
    assert settings.VERIFICATION_CODE_MAX_ATTEMPTS == 5


def test_verify_for_an_unknown_email_is_the_same_400(auth: AuthApi) -> None:
    auth.forget_slug("nobody@example.com")
    err = auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "nobody@example.com", "code": "123456"})

    assert (err.status, err.message) == (400, INVALID_CODE)
    assert OutboxEvent.objects.count() == 0


def test_resend_mails_a_new_code_and_the_old_one_stops_working(auth: AuthApi) -> None:
    auth(subjects.AUTH_SIGNUP, signup_data())
    first = mailed_code()

    assert auth(subjects.AUTH_RESEND_VERIFICATION, {"email": "JANE.DOE@example.com"}) is None

    assert len(mail.outbox) == 2
    second = mailed_code()
    assert VerificationCode.objects.count() == 1
    if first != second:
        assert auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": first}).status == 400
    assert auth(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane.doe@example.com", "code": second}) is None
    assert User.objects.get().is_verified is True


def test_resend_answers_the_same_for_unknown_and_verified_accounts_and_mails_nothing(auth: AuthApi) -> None:
    verified = UserFactory()

    assert auth(subjects.AUTH_RESEND_VERIFICATION, {"email": "nobody@example.com"}) is None
    assert auth(subjects.AUTH_RESEND_VERIFICATION, {"email": verified.email}) is None

    assert mail.outbox == []
    assert VerificationCode.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
