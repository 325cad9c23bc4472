"""End to end over HTTP: TOTP enrolment, the two-step login with cookies only at its end, recovery codes, disable,
a sys_admin's reset."""

from __future__ import annotations

import time

import pyotp

from devstack.testing.mail import wait_for_mail
from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import CSRF_COOKIE, REFRESH_COOKIE, Account, Api, logged_in, registered
from gateway.api.tests.tokens import unverified_claims


def code(secret: str, offset: int = 0) -> str:
    """The code `offset` steps from now, away from a step's end (the service then sees the same step)."""
    if 30 - time.time() % 30 < 3:
        time.sleep(30 - time.time() % 30 + 0.1)
    return str(pyotp.TOTP(secret).at(time.time() + 30 * offset))


def enrol(api: Api) -> tuple[str, list[str]]:
    setup = api.post("/api/auth/mfa/totp/setup")
    assert setup.status_code == 200, setup.content
    secret = setup.json()["secret"]
    confirm = api.post("/api/auth/mfa/totp/confirm", {"code": code(secret)})
    assert confirm.status_code == 200, confirm.content
    return secret, confirm.json()["recoveryCodes"]


def test_enrol_then_log_in_with_password_and_code(stack: RunningStack) -> None:
    account = registered(stack)
    api = logged_in(account)
    assert api.post("/api/auth/mfa/totp/setup", csrf=False).status_code == 403

    secret, codes = enrol(api)

    assert api.get("/api/auth/mfa").json() == {"totp": True, "recoveryCodesLeft": 10, "passkeys": []}
    assert wait_for_mail(stack.mail_dir, account.email, subject="Two-step login enabled")
    browser = Api()
    first = browser.post("/api/login", {"slug": account.email, "password": account.password}, bearer=False)
    assert first.status_code == 200
    challenge = first.json()
    assert set(challenge) == {"mfaRequired", "mfaToken", "methods"}
    assert (challenge["mfaRequired"], challenge["methods"]) == (True, ["totp", "recovery_code"])
    assert browser.cookie(REFRESH_COOKIE) is None and browser.cookie(CSRF_COOKIE) is None

    wrong = browser.post("/api/login/mfa", {"mfaToken": challenge["mfaToken"], "code": "000000"}, bearer=False)
    done = browser.post("/api/login/mfa", {"mfaToken": challenge["mfaToken"], "code": code(secret, 1)}, bearer=False)

    assert wrong.status_code == 401 and wrong.json()["statusCode"] == 401
    assert done.status_code == 200, done.content
    assert set(done.json()) == {"accessToken"}
    assert unverified_claims(done.json()["accessToken"])["amr"] == ["pwd", "otp"]
    assert browser.cookie(REFRESH_COOKIE) and browser.cookie(CSRF_COOKIE)
    browser.access_token = done.json()["accessToken"]
    assert browser.refresh().status_code == 200
    assert unverified_claims(browser.access_token)["amr"] == ["pwd", "otp"]
    reused = browser.post("/api/login/mfa", {"mfaToken": challenge["mfaToken"], "code": code(secret, 1)}, bearer=False)
    assert reused.status_code == 401
    assert len(codes) == 10


def test_second_step_bodies_are_checked_at_the_gateway(stack: RunningStack) -> None:
    api = Api()

    both = api.post("/api/login/mfa", {"mfaToken": "abc", "code": "123456", "recoveryCode": "ABCDE-FGHIJ"})
    neither = api.post("/api/login/mfa", {"mfaToken": "abc"})
    extra = api.post("/api/login/mfa", {"mfaToken": "abc", "code": "123456", "slug": "x"})
    unknown = api.post("/api/login/mfa", {"mfaToken": "not-a-live-token", "code": "123456"})

    assert (both.status_code, neither.status_code, extra.status_code) == (400, 400, 400)
    assert "fields" in both.json() and "slug" in extra.json()["fields"]
    assert unknown.status_code == 401


def test_recovery_codes_renewal_and_disable_with_password_and_code(stack: RunningStack) -> None:
    account = registered(stack)
    api = logged_in(account)
    secret, old = enrol(api)

    renewed = api.post("/api/auth/mfa/recovery-codes", {"password": account.password, "code": old[0]})
    assert renewed.status_code == 200
    new = renewed.json()["recoveryCodes"]
    assert len(new) == 10 and not set(new) & set(old)
    no_csrf = api.call("DELETE", "/api/auth/mfa/totp", {"password": account.password, "code": new[0]}, csrf=False)
    bad = api.call("DELETE", "/api/auth/mfa/totp", {"password": "Not-The-Password-1", "code": new[0]})
    off = api.call("DELETE", "/api/auth/mfa/totp", {"password": account.password, "code": new[0]})

    assert (no_csrf.status_code, bad.status_code, off.status_code) == (403, 400, 200)
    assert api.get("/api/auth/mfa").json() == {"totp": False, "recoveryCodesLeft": 0, "passkeys": []}
    assert "accessToken" in Api().login(account.email, account.password).json()
    assert secret


def test_a_sys_admin_resets_a_users_factors_and_ends_its_sessions(stack: RunningStack, sys_admin: Api) -> None:
    account: Account = registered(stack)
    api = logged_in(account)
    enrol(api)
    user_id = api.user_id

    by_self = api.delete(f"/api/user/{user_id}/mfa")
    reset = sys_admin.delete(f"/api/user/{user_id}/mfa")

    assert by_self.status_code == 403
    assert reset.status_code == 200, reset.content
    assert api.get("/api/auth/mfa").status_code == 401  # the user's session ended
    again = logged_in(account)
    assert again.get("/api/auth/mfa").json()["totp"] is False
    assert sys_admin.delete("/api/user/00000000-0000-4000-8000-000000000000/mfa").status_code == 404
