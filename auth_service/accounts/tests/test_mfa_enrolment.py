"""TOTP enrolment and management through the bridge: setup, confirm, drift, recovery codes, disable, admin reset."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from django.core import mail
from django.db import connection
from django_redis import get_redis_connection

from auth_service.accounts.models import RecoveryCode, TotpDevice, User
from auth_service.accounts.tests.conftest import AuthApi, agent_of
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.accounts.tests.mfa_support import CLIENT, code_at, enrol, login, login_mfa, setup, status
from auth_service.audit.models import SecurityEvent
from common.contracts import subjects
from common.contracts.sessions import session_key

Kind = SecurityEvent.Kind


def test_setup_gives_a_secret_uri_and_svg_and_activates_nothing(auth: AuthApi) -> None:
    user = UserFactory(email="ada@example.com")

    reply = setup(auth, user)

    assert set(reply) == {"secret", "otpauthUri", "qrSvg"}
    assert re.fullmatch(r"[A-Z2-7]{32}", reply["secret"])
    uri = urlparse(reply["otpauthUri"])
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", "/Authmesh:ada%40example.com")
    assert parse_qs(uri.query) == {"secret": [reply["secret"]], "issuer": ["Authmesh"]}
    assert reply["qrSvg"].startswith("<svg") and reply["qrSvg"].endswith("</svg>")
    assert status(auth, user) == {"totp": False, "recoveryCodesLeft": 0, "passkeys": []}
    # Sealed at rest: the secret appears nowhere in the row.
    device = TotpDevice.objects.get(user=user)
    assert device.secret.startswith("kek1:") and reply["secret"] not in device.secret
    assert not device.is_confirmed
    assert "mfaRequired" not in login(auth, user)  # still a password login


def test_a_new_setup_replaces_an_unconfirmed_one(auth: AuthApi) -> None:
    user = UserFactory()
    first = setup(auth, user)["secret"]
    second = setup(auth, user)["secret"]

    stale = auth.error(subjects.AUTH_TOTP_CONFIRM, {"code": code_at(first)}, agent=agent_of(user), client=CLIENT)
    ok = auth(subjects.AUTH_TOTP_CONFIRM, {"code": code_at(second)}, agent=agent_of(user), client=CLIENT)

    assert first != second
    assert stale.status == 400
    assert len(ok["recoveryCodes"]) == 10
    assert TotpDevice.objects.filter(user=user).count() == 1


def test_confirm_with_the_right_code_enables_totp_with_ten_recovery_codes(auth: AuthApi) -> None:
    user = UserFactory()
    mail.outbox.clear()

    secret, codes = enrol(auth, user)

    assert len(codes) == len(set(codes)) == 10
    assert all(re.fullmatch(r"[A-Z2-7]{5}-[A-Z2-7]{5}", code) for code in codes)
    assert status(auth, user) == {"totp": True, "recoveryCodesLeft": 10, "passkeys": []}
    # Only keyed hashes are stored; nothing of the codes or the secret in events or mail.
    hashes = set(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert len(hashes) == 10 and not any(code.replace("-", "") in h for code in codes for h in hashes)
    kinds = list(SecurityEvent.objects.filter(user_id=user.id).values_list("kind", "outcome"))
    assert (Kind.TOTP_ENABLED, "success") in kinds and (Kind.RECOVERY_CODES_ISSUED, "success") in kinds
    _assert_nothing_leaked([secret, *codes, *(c.replace("-", "") for c in codes)])
    assert [m.subject for m in mail.outbox] == ["Two-step login enabled"]
    assert setup_conflict(auth, user) == 409


def setup_conflict(auth: AuthApi, user: User) -> int:
    return auth.error(subjects.AUTH_TOTP_SETUP, agent=agent_of(user), client=CLIENT).status


def _assert_nothing_leaked(secrets: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT detail::text FROM audit_securityevent")
        details = " ".join(row[0] for row in cursor.fetchall())
    bodies = " ".join(m.body for m in mail.outbox)
    for secret in secrets:
        assert secret not in details
        assert secret not in bodies


def test_a_wrong_confirm_code_is_a_400_and_enables_nothing(auth: AuthApi) -> None:
    user = UserFactory()
    secret = setup(auth, user)["secret"]
    wrong = f"{(int(code_at(secret)) + 1) % 1_000_000:06d}"

    error = auth.error(subjects.AUTH_TOTP_CONFIRM, {"code": wrong}, agent=agent_of(user), client=CLIENT)

    assert (error.status, error.message) == (400, "Invalid code")
    assert status(auth, user)["totp"] is False
    assert not RecoveryCode.objects.filter(user=user).exists()
    assert SecurityEvent.objects.filter(user_id=user.id, kind=Kind.TOTP_ENABLED, outcome="failure").count() == 1


def test_one_step_of_drift_is_accepted_either_way(auth: AuthApi) -> None:
    early, late = UserFactory(), UserFactory()

    enrol(auth, early, offset=-1)
    enrol(auth, late, offset=1)

    assert status(auth, early)["totp"] and status(auth, late)["totp"]


def test_two_steps_of_drift_are_refused_either_way(auth: AuthApi) -> None:
    user = UserFactory()
    secret = setup(auth, user)["secret"]

    for offset in (-2, 2):
        error = auth.error(
            subjects.AUTH_TOTP_CONFIRM, {"code": code_at(secret, offset)}, agent=agent_of(user), client=CLIENT
        )
        assert error.status == 400
    assert status(auth, user)["totp"] is False


def test_regenerating_recovery_codes_needs_password_and_code_and_kills_the_old_set(auth: AuthApi) -> None:
    user = UserFactory()
    secret, old = enrol(auth, user)
    agent = agent_of(user)

    wrong_password = auth.error(
        subjects.AUTH_RECOVERY_CODES_REGENERATE, {"password": "Wrong-1!x", "code": old[0]}, agent=agent, client=CLIENT
    )
    new = auth(
        subjects.AUTH_RECOVERY_CODES_REGENERATE, {"password": PASSWORD, "code": code_at(secret, 1)}, agent=agent
    )["recoveryCodes"]

    assert wrong_password.status == 400
    assert len(new) == 10 and not set(new) & set(old)
    assert status(auth, user)["recoveryCodesLeft"] == 10
    token = login(auth, user)["mfaToken"]
    assert auth.error(subjects.AUTH_LOGIN_MFA, {"mfaToken": token, "recoveryCode": old[1]}, client=CLIENT).status == 401
    assert "accessToken" in login_mfa(auth, token, recoveryCode=new[0])


def test_disable_needs_password_and_code_then_a_password_logs_in_alone(auth: AuthApi) -> None:
    user = UserFactory()
    secret, codes = enrol(auth, user)
    agent = agent_of(user)
    mail.outbox.clear()

    wrong_code = auth.error(
        subjects.AUTH_TOTP_DISABLE, {"password": PASSWORD, "code": "000000"}, agent=agent, client=CLIENT
    )
    assert wrong_code.status == 400
    assert status(auth, user)["totp"] is True
    auth(subjects.AUTH_TOTP_DISABLE, {"password": PASSWORD, "code": codes[0]}, agent=agent, client=CLIENT)

    assert status(auth, user) == {"totp": False, "recoveryCodesLeft": 0, "passkeys": []}
    assert set(login(auth, user)) == {"accessToken", "refreshToken", "refreshExpiresAt", "sessionId"}
    assert "Two-step login disabled" in [m.subject for m in mail.outbox]
    assert "Failed attempt to change your second factor" in [m.subject for m in mail.outbox]
    failures = SecurityEvent.objects.filter(user_id=user.id, kind=Kind.TOTP_DISABLED, outcome="failure")
    assert failures.count() == 1
    _assert_nothing_leaked([secret, *codes])


def test_a_sys_admin_reset_removes_the_factors_and_ends_every_session(auth: AuthApi) -> None:
    admin, user = UserFactory(roles=["sys_admin"]), UserFactory()
    secret, _ = enrol(auth, user)
    pair = login_mfa(auth, login(auth, user)["mfaToken"], code=code_at(secret, 1))
    redis = get_redis_connection("default")
    assert redis.exists(session_key(pair["sessionId"]))

    not_allowed = auth.error(
        subjects.AUTH_MFA_RESET, {"id": str(user.id)}, agent=agent_of(UserFactory(roles=["admin"]))
    )
    itself = auth.error(subjects.AUTH_MFA_RESET, {"id": str(admin.id)}, agent=agent_of(admin))
    auth(subjects.AUTH_MFA_RESET, {"id": str(user.id)}, agent=agent_of(admin))

    assert (not_allowed.status, itself.status) == (403, 400)
    assert not redis.exists(session_key(pair["sessionId"]))
    assert status(auth, user) == {"totp": False, "recoveryCodesLeft": 0, "passkeys": []}
    event = SecurityEvent.objects.get(kind=Kind.MFA_RESET, outcome="success")
    assert (event.user_id, event.actor_id) == (user.id, admin.id)
    assert "Your second factors were reset" in [m.subject for m in mail.outbox]
