"""Login with a second factor through the bridge: the mfaToken's rules, replay, amr, and the shared failure budget."""

from __future__ import annotations

import time
from typing import Any

from django.core import mail
from django_redis import get_redis_connection

from auth_service.accounts import selectors
from auth_service.accounts.models import User
from auth_service.accounts.sessions import session_store_delete_all
from auth_service.accounts.tests.conftest import AuthApi
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.accounts.tests.mfa_support import CLIENT, code_at, enrol, login, login_mfa, status
from auth_service.audit.models import SecurityEvent
from common.contracts import subjects
from common.contracts.errors import ServiceError
from common.contracts.sessions import user_sessions_key

INVALID_MFA = "Invalid or expired second-factor code or token"


def mfa_status(auth: AuthApi, token: str, *, ip: str = "10.0.0.1", **factor: str) -> int:
    """The second step's answer: 200, or the status of the error."""
    try:
        login_mfa(auth, token, ip=ip, **factor)
    except ServiceError as exc:
        return exc.status
    return 200


def failed_round(auth: AuthApi, user: User, *, ip: str) -> str:
    """A password step and four wrong codes from `ip` (1 + 4 failures in the login budget); the token stays live."""
    token = login(auth, user, ip=ip)["mfaToken"]
    assert [mfa_status(auth, token, ip=ip, code="000000") for _ in range(4)] == [401] * 4
    return token


def test_an_account_without_a_second_factor_logs_in_as_before(auth: AuthApi) -> None:
    user = UserFactory()

    reply = login(auth, user)

    assert set(reply) == {"accessToken", "refreshToken", "refreshExpiresAt", "sessionId"}
    assert auth.decode_access(reply["accessToken"])[1]["amr"] == ["pwd"]


def test_a_password_alone_gets_a_challenge_and_no_session(auth: AuthApi) -> None:
    user = UserFactory()
    enrol(auth, user)

    reply = login(auth, user)

    assert set(reply) == {"mfaRequired", "mfaToken", "methods"}
    assert reply["mfaRequired"] is True
    assert reply["methods"] == ["totp", "recovery_code"]
    assert len(reply["mfaToken"]) >= 40
    assert not get_redis_connection("default").smembers(user_sessions_key(str(user.id)))
    wrong = auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": "Wrong-Password-1"}, client=CLIENT)
    assert (wrong.status, wrong.message) == (401, "Invalid credentials")


def test_the_right_code_finishes_the_login_with_amr_pwd_otp_kept_on_refresh(auth: AuthApi) -> None:
    user = UserFactory()
    secret, _ = enrol(auth, user)

    reply = login_mfa(auth, login(auth, user)["mfaToken"], code=code_at(secret, 1))

    assert set(reply) == {"accessToken", "refreshToken", "refreshExpiresAt", "sessionId"}
    claims = auth.decode_access(reply["accessToken"])[1]
    assert (claims["sub"], claims["amr"]) == (str(user.id), ["pwd", "otp"])
    refreshed = auth(subjects.AUTH_REVALIDATE, {"refreshToken": reply["refreshToken"]}, client=CLIENT)
    assert auth.decode_access(refreshed["accessToken"])[1]["amr"] == ["pwd", "otp"]
    event = SecurityEvent.objects.filter(kind="login", outcome="success", user_id=user.id).latest("id")
    assert event.detail == {"sid": reply["sessionId"], "amr": ["pwd", "otp"]}


def test_a_code_works_once(auth: AuthApi) -> None:
    user = UserFactory()
    secret, _ = enrol(auth, user)
    code = code_at(secret, 1)
    assert mfa_status(auth, login(auth, user)["mfaToken"], code=code) == 200

    replay = auth.error(subjects.AUTH_LOGIN_MFA, {"mfaToken": login(auth, user)["mfaToken"], "code": code})
    confirm_code = code_at(secret)  # the code that confirmed the setup, an older step: refused too

    assert (replay.status, replay.message) == (401, INVALID_MFA)
    assert mfa_status(auth, login(auth, user)["mfaToken"], code=confirm_code) == 401


def test_the_token_is_single_use(auth: AuthApi) -> None:
    user = UserFactory()
    _, codes = enrol(auth, user)
    token = login(auth, user)["mfaToken"]

    assert mfa_status(auth, token, recoveryCode=codes[0]) == 200
    assert mfa_status(auth, token, recoveryCode=codes[1]) == 401
    assert status(auth, user)["recoveryCodesLeft"] == 9  # the refused second use spent nothing


def test_the_token_expires(auth: AuthApi, settings: Any) -> None:
    settings.MFA_TOKEN_TTL_SECONDS = 1
    user = UserFactory()
    secret, _ = enrol(auth, user)
    token = login(auth, user)["mfaToken"]

    time.sleep(1.5)

    assert mfa_status(auth, token, code=code_at(secret, 1)) == 401


def test_five_wrong_codes_kill_the_token_and_the_owner_is_told(auth: AuthApi) -> None:
    user = UserFactory()
    secret, _ = enrol(auth, user)
    token = login(auth, user)["mfaToken"]
    mail.outbox.clear()

    wrong = [mfa_status(auth, token, code="000000") for _ in range(5)]

    assert wrong == [401] * 5
    assert mfa_status(auth, token, code=code_at(secret, 1)) == 401
    assert [m.subject for m in mail.outbox] == ["Failed login with your password"]  # once per login attempt
    failures = SecurityEvent.objects.filter(kind="second_factor", outcome="failure", user_id=user.id)
    assert [e.detail.get("attemptsLeft") for e in failures.order_by("id")] == [4, 3, 2, 1, 0]
    assert "000000" not in str([e.detail for e in failures])


def test_wrong_codes_spend_the_login_failure_budget_across_both_steps(auth: AuthApi) -> None:
    user = UserFactory()
    secret, _ = enrol(auth, user)
    ip = "203.0.113.40"

    # Each password step stays counted until a second factor is right; each wrong code counts: 1 + 4 + 1 + 4 = 10.
    failed_round(auth, user, ip=ip)
    second = failed_round(auth, user, ip=ip)

    again = auth.error(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD}, client={**CLIENT, "ip": ip})
    code_step = mfa_status(auth, second, ip=ip, code=code_at(secret, 1))

    assert again.status == 429 and "Retry-After" in again.headers
    assert code_step == 429  # even the right code waits: the budget is spent
    # The owner, from another source, still gets in; the throttled token was not spent by the 429.
    fresh = login(auth, user, ip="198.51.100.9")["mfaToken"]
    assert mfa_status(auth, fresh, ip="198.51.100.9", code=code_at(secret, 1)) == 200


def test_a_right_code_forgives_the_sources_failures(auth: AuthApi) -> None:
    user = UserFactory()
    secret, _ = enrol(auth, user)
    ip = "203.0.113.41"
    token = failed_round(auth, user, ip=ip)

    assert mfa_status(auth, token, ip=ip, code=code_at(secret, 1)) == 200
    for _ in range(2):  # a full budget again: two more rounds of 1 + 4 fit in it
        failed_round(auth, user, ip=ip)


def test_a_recovery_code_logs_in_once_and_tells_the_owner(auth: AuthApi) -> None:
    user = UserFactory()
    _, codes = enrol(auth, user)
    mail.outbox.clear()

    reply = login_mfa(auth, login(auth, user)["mfaToken"], recoveryCode=codes[3].lower().replace("-", " "))
    reuse = mfa_status(auth, login(auth, user)["mfaToken"], recoveryCode=codes[3])

    assert auth.decode_access(reply["accessToken"])[1]["amr"] == ["pwd", "otp"]
    assert reuse == 401
    assert status(auth, user)["recoveryCodesLeft"] == 9
    assert "A recovery code was used" in [m.subject for m in mail.outbox]
    used = SecurityEvent.objects.get(kind="recovery_code_used", user_id=user.id)
    assert used.detail == {"left": 9}


def test_code_and_recovery_code_together_or_neither_are_a_400(auth: AuthApi) -> None:
    user = UserFactory()
    _, codes = enrol(auth, user)
    token = login(auth, user)["mfaToken"]

    both = auth.error(subjects.AUTH_LOGIN_MFA, {"mfaToken": token, "code": "123456", "recoveryCode": codes[0]})
    neither = auth.error(subjects.AUTH_LOGIN_MFA, {"mfaToken": token})

    assert (both.status, neither.status) == (400, 400)
    assert mfa_status(auth, token, recoveryCode=codes[0]) == 200  # the token was not touched


def test_another_client_cannot_finish_the_login(auth: AuthApi) -> None:
    user = UserFactory()
    secret, _ = enrol(auth, user)
    token = login(auth, user)["mfaToken"]

    stolen = auth.error(
        subjects.AUTH_LOGIN_MFA, {"mfaToken": token, "code": code_at(secret, 1)}, client={"ip": "1.2.3.4"}
    )

    assert stolen.status == 401
    assert mfa_status(auth, token, code=code_at(secret, 1)) == 401


def test_unverified_and_inactive_accounts_answer_as_before(auth: AuthApi) -> None:
    unverified, inactive = UserFactory(), UserFactory()
    enrol(auth, unverified)
    enrol(auth, inactive)
    type(unverified).objects.filter(pk=unverified.pk).update(is_verified=False)
    type(inactive).objects.filter(pk=inactive.pk).update(is_active=False)

    not_verified = auth.error(subjects.AUTH_LOGIN, {"slug": unverified.email, "password": PASSWORD}, client=CLIENT)
    wrong = auth.error(subjects.AUTH_LOGIN, {"slug": unverified.email, "password": "Wrong-Password-1"}, client=CLIENT)
    off = auth.error(subjects.AUTH_LOGIN, {"slug": inactive.email, "password": PASSWORD}, client=CLIENT)

    assert (not_verified.status, not_verified.message) == (
        400,
        "Account not verified: enter the code sent to your e-mail address",
    )
    assert (wrong.status, wrong.message) == (off.status, off.message) == (401, "Invalid credentials")


def test_a_password_reset_between_the_steps_opens_nothing(auth: AuthApi) -> None:
    user = UserFactory()
    secret, _ = enrol(auth, user)
    token = login(auth, user)["mfaToken"]
    session_store_delete_all(str(user.id))  # what a reset, a role change or a deactivation does to the epoch

    assert mfa_status(auth, token, code=code_at(secret, 1)) == 401
    assert not get_redis_connection("default").smembers(user_sessions_key(str(user.id)))


def test_finding_a_users_second_factors_is_one_query(auth: AuthApi, django_assert_num_queries: Any) -> None:
    """It runs on every password login: an account without a second factor pays one query for it."""
    plain, enrolled = UserFactory(), UserFactory()
    enrol(auth, enrolled)

    with django_assert_num_queries(1):
        assert selectors.mfa_methods(plain.id) == []
    with django_assert_num_queries(1):
        assert selectors.mfa_methods(enrolled.id) == ["totp", "recovery_code"]
