"""The auth admin and operations on second factors: the state on the user's page, the reset action (sys_admin only),
TOTP secrets re-encrypted with the signing keys when the key-encryption key rotates."""

from __future__ import annotations

import io
import time

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client, override_settings

from auth_service.accounts.keyring import unseal
from auth_service.accounts.models import Passkey, RecoveryCode, TotpDevice, User
from auth_service.accounts.otp import totp_code, totp_step
from auth_service.accounts.services import mfa
from auth_service.accounts.sessions import session_store_create, session_store_list
from auth_service.accounts.tests.conftest import logged_in
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.audit.models import SecurityEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cookie_sessions")]


def enrolled() -> User:
    user = UserFactory()
    secret = mfa.totp_setup(user_id=str(user.id)).secret
    mfa.totp_confirm(user_id=str(user.id), code=totp_code(secret, step=totp_step(time.time())))
    return user


def test_the_user_page_shows_the_second_factors_without_secrets() -> None:
    boss, user = UserFactory(roles=["sys_admin"]), enrolled()

    page = logged_in(boss).get(f"/admin/accounts/user/{user.pk}/change/").content.decode()

    assert "TOTP on, 10 recovery code(s) left, 0 passkey(s)" in page
    assert TotpDevice.objects.get(user=user).secret not in page


def test_the_reset_action_removes_the_factors_and_ends_the_sessions() -> None:
    boss, user = UserFactory(roles=["sys_admin"]), enrolled()
    session_store_create(
        user_id=str(user.id), check_digest="0" * 64, expires_at=2_000_000_000, device="d", ip="i", epoch=0
    )

    response = logged_in(boss).post(
        "/admin/accounts/user/", {"action": "reset_second_factors", "_selected_action": [str(user.pk)]}
    )

    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=user).exists()
    assert not RecoveryCode.objects.filter(user=user).exists()
    assert session_store_list(str(user.id)) == []
    assert SecurityEvent.objects.filter(kind="mfa_reset", user_id=user.id, actor_id=boss.id).count() == 1


def test_an_admin_cannot_reset_second_factors() -> None:
    admin, user = UserFactory(roles=["admin"]), enrolled()

    logged_in(admin).post("/admin/accounts/user/", {"action": "reset_second_factors", "_selected_action": [user.pk]})

    assert TotpDevice.objects.filter(user=user, is_confirmed=True).exists()
    assert SecurityEvent.objects.filter(kind="mfa_reset", outcome="failure").count() == 1


def test_rotating_the_key_encryption_key_reencrypts_totp_secrets() -> None:
    user = enrolled()
    before = TotpDevice.objects.get(user=user).secret
    plain = unseal(before, what="x")
    current, new = settings.KEY_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()

    with override_settings(KEY_ENCRYPTION_KEYS=[new, current]):
        out = io.StringIO()
        call_command("reencrypt_secrets", stdout=out)
    after = TotpDevice.objects.get(user=user).secret

    assert "re-encrypted 1 TOTP secret(s)" in out.getvalue()
    assert after != before and after.startswith("kek1:")
    with override_settings(KEY_ENCRYPTION_KEYS=[new]):
        assert unseal(after, what="x") == plain


def _console_login(user: User, **extra: str) -> tuple[Client, HttpResponse]:
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": user.email, "password": PASSWORD, **extra})
    return client, response


def test_a_staff_account_with_totp_needs_its_code_at_the_console() -> None:
    boss = UserFactory(roles=["sys_admin"])
    secret = mfa.totp_setup(user_id=str(boss.id)).secret
    codes = mfa.totp_confirm(user_id=str(boss.id), code=totp_code(secret, step=totp_step(time.time()) - 1))

    _, password_alone = _console_login(boss)
    now = {totp_code(secret, step=totp_step(time.time()) + drift) for drift in (-1, 0, 1)}
    _, wrong_code = _console_login(
        boss, code=next(code for code in ("000000", "111111", "222222", "333333") if code not in now)
    )
    client, with_code = _console_login(boss, code=totp_code(secret, step=totp_step(time.time())))
    _, with_recovery_code = _console_login(boss, code=codes[0])

    assert password_alone.status_code == wrong_code.status_code == 200  # the form again, with the generic error
    assert "Authenticator or recovery code" in password_alone.content.decode()
    assert with_code.status_code == with_recovery_code.status_code == 302
    assert client.get("/admin/accounts/user/").status_code == 200
    reasons = list(SecurityEvent.objects.filter(kind="login", outcome="failure").values_list("reason", flat=True))
    assert sorted(reasons) == ["second_factor", "second_factor_missing"]


def test_a_staff_account_with_passkeys_only_cannot_use_the_console() -> None:
    boss = UserFactory(roles=["sys_admin"])
    Passkey.objects.create(user=boss, credential_id=b"\x01\x02", public_key=b"\x00", name="Laptop")

    _, response = _console_login(boss)

    assert response.status_code == 200
    assert SecurityEvent.objects.get(kind="login", outcome="failure").reason == "passkey_only"


def test_a_staff_account_without_a_second_factor_logs_in_with_its_password() -> None:
    _, response = _console_login(UserFactory(roles=["sys_admin"]))

    assert response.status_code == 302
