"""Sign-up, verification, login, recovery and reset through the gateway, against the running services."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from devstack.testing.mail import mails_to, wait_for_mail
from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import (
    CSRF_COOKIE,
    NEW_PASSWORD,
    REFRESH_COOKIE,
    Account,
    Api,
    logged_in,
    new_account,
    random_ip,
    registered,
    sign_up,
    verify,
)

pytestmark = pytest.mark.e2e

INVALID_CREDENTIALS = {
    "statusCode": 401,
    "error": "Unauthorized",
    "message": "Invalid credentials",
    "code": "unauthorized",
}


def login_status(
    account: Account, slug: str | None = None, password: str | None = None
) -> tuple[int, dict[str, object]]:
    response = Api().post("/api/login", {"slug": slug or account.email, "password": password or account.password})
    return response.status_code, response.json()


def test_signup_verify_login(stack: RunningStack) -> None:
    account = new_account()
    api = Api()
    response = sign_up(api, account)
    assert response.status_code == 200
    assert response.content == b""
    status, body = login_status(account)
    assert status == 400, "unverified: refused only after a correct password"
    assert body["statusCode"] == 400
    assert verify(stack, api, account).status_code == 200
    assert login_status(account)[0] == 200
    assert login_status(account, slug=account.username)[0] == 200


def test_signup_with_a_taken_username_is_409(stack: RunningStack) -> None:
    taken = registered(stack)
    response = sign_up(Api(), Account(name="Other Person", username=taken.username, email=new_account().email))
    assert response.status_code == 409
    assert response.json()["statusCode"] == 409


def test_signup_with_a_registered_email_answers_200_and_tells_its_owner(stack: RunningStack) -> None:
    owner = registered(stack)
    response = sign_up(Api(), Account(name="Someone Else", username=new_account().username, email=owner.email))
    assert response.status_code == 200
    assert response.content == b""
    notice = wait_for_mail(stack.mail_dir, owner.email, subject="sign-up attempt")
    assert "already has an account" in notice.body
    assert login_status(owner)[0] == 200, "the existing account is untouched"


def test_signup_refuses_unknown_properties_and_bad_fields(stack: RunningStack) -> None:
    account = new_account()
    body = {
        "name": "Eve1",
        "username": account.username,
        "email": account.email,
        "password": account.password,
        "roles": ["sys_admin"],
    }
    response = Api().post("/api/signup", body)
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"name", "roles"}
    assert mails_to(stack.mail_dir, account.email) == []


def test_signup_password_policy_is_the_auth_services(stack: RunningStack) -> None:
    account = new_account()
    account.password = "short"
    response = sign_up(Api(), account)
    assert response.status_code == 400
    assert "password" in response.json()["fields"]


def test_wrong_and_used_codes_are_400(stack: RunningStack) -> None:
    account = new_account()
    api = Api()
    assert sign_up(api, account).status_code == 200
    code = wait_for_mail(stack.mail_dir, account.email, subject="verification").code()
    wrong = "000000" if code != "000000" else "111111"
    response = api.post("/api/verify-account", {"email": account.email, "code": wrong})
    assert response.status_code == 400
    assert api.post("/api/verify-account", {"email": account.email, "code": code}).status_code == 200
    assert api.post("/api/verify-account", {"email": account.email, "code": code}).status_code == 400


def test_resend_verification_mails_a_new_code_and_never_enumerates(stack: RunningStack) -> None:
    account = new_account()
    api = Api()
    assert sign_up(api, account).status_code == 200
    wait_for_mail(stack.mail_dir, account.email, subject="verification")
    assert api.post("/api/resend-verification", {"email": account.email}).status_code == 200
    assert verify(stack, api, account, count=2).status_code == 200
    unknown = api.post("/api/resend-verification", {"email": new_account().email})
    assert unknown.status_code == 200
    assert unknown.content == b""


def test_login_answers_the_access_token_and_sets_both_cookies(stack: RunningStack) -> None:
    account = registered(stack)
    api = Api()
    response = api.login(account.email, account.password)
    assert set(response.json()) == {"accessToken"}
    assert response["Cache-Control"] == "no-store"
    refresh = response.cookies[REFRESH_COOKIE]
    assert refresh["httponly"] is True
    assert refresh["secure"] is True
    assert refresh["samesite"] == "Strict"
    assert refresh["path"] == "/api/auth"
    assert 7 * 24 * 3600 - 60 <= int(refresh["max-age"]) <= 7 * 24 * 3600, "seconds, not milliseconds"
    assert "refreshToken" not in response.content.decode()
    csrf = response.cookies[CSRF_COOKIE]
    assert csrf["httponly"] == ""
    assert csrf["secure"] is True
    assert csrf["samesite"] == "Strict"
    assert csrf["path"] == "/"


def test_bad_credentials_are_one_generic_401(stack: RunningStack) -> None:
    account = registered(stack)
    inactive = registered(stack)
    api = logged_in(inactive)
    assert api.patch(f"/api/user/deactivate/{api.user_id}").status_code == 200
    assert login_status(account, password="Wrong!Password-1") == (401, INVALID_CREDENTIALS)
    assert login_status(account, slug=new_account().email) == (401, INVALID_CREDENTIALS)
    assert login_status(account, slug=new_account().username) == (401, INVALID_CREDENTIALS)
    assert login_status(inactive) == (401, INVALID_CREDENTIALS)


def test_failed_logins_from_one_source_are_cut_off_while_the_owner_elsewhere_gets_in(stack: RunningStack) -> None:
    account = registered(stack)
    guesser = Api(ip=random_ip())
    statuses = [
        guesser.post("/api/login", {"slug": account.email, "password": f"Wrong!Password-{n}"}).status_code
        for n in range(10)
    ]
    assert statuses == [401] * 10
    # The guesser's source is cut off, even with the right password...
    response = guesser.post("/api/login", {"slug": account.email, "password": account.password})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # ...while the owner, from a source without failures, is not locked out by the stranger's guesses.
    owner = Api(ip=random_ip())
    assert owner.post("/api/login", {"slug": account.email, "password": account.password}).status_code == 200


def test_gateway_throttle_answers_429_with_retry_after(stack: RunningStack) -> None:
    api = Api()
    with override_settings(THROTTLE_RATES={"signup.ip": "1/10m"}):
        assert sign_up(api, new_account()).status_code == 200
        response = sign_up(api, new_account())
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 600
    assert response.json()["statusCode"] == 429


def test_recovery_is_the_same_answer_whether_or_not_the_account_exists(stack: RunningStack) -> None:
    account = registered(stack)
    api = logged_in(account)
    timings = []
    answers = []
    for slug in (account.email, new_account().email, account.username, new_account().username):
        started = time.perf_counter()
        response = api.post("/api/recover-credentials", {"slug": slug})
        timings.append(time.perf_counter() - started)
        answers.append((response.status_code, response.content))
        # Both cookies are cleared, with their flags.
        assert response.cookies[REFRESH_COOKIE]["max-age"] == 0
        assert response.cookies[REFRESH_COOKIE]["path"] == "/api/auth"
        assert response.cookies[CSRF_COOKIE]["max-age"] == 0
    assert set(answers) == {(200, b"")}
    assert max(timings) - min(timings) < 0.25
    assert len(mails_to(stack.mail_dir, account.email, subject="reset")) >= 1


def test_reset_password_ends_every_session_and_is_single_use(stack: RunningStack) -> None:
    account = registered(stack)
    laptop, phone = logged_in(account), logged_in(account)
    assert Api().post("/api/recover-credentials", {"slug": account.email}).status_code == 200
    token = wait_for_mail(stack.mail_dir, account.email, subject="reset").recovery_token()
    response = laptop.post("/api/reset-password", {"recoveryToken": token, "password": NEW_PASSWORD})
    assert response.status_code == 200
    assert response.cookies[REFRESH_COOKIE]["max-age"] == 0
    for device in (laptop, phone):
        assert device.get("/api/auth/sessions").status_code == 401
    assert login_status(account)[0] == 401
    assert login_status(account, password=NEW_PASSWORD)[0] == 200
    again = Api().post("/api/reset-password", {"recoveryToken": token, "password": "Another!Secret-42"})
    assert again.status_code == 400
    bogus = Api().post("/api/reset-password", {"recoveryToken": "not-a-real-token", "password": "Another!Secret-42"})
    assert bogus.status_code == 400


def test_a_code_allows_five_attempts(stack: RunningStack) -> None:
    account = new_account()
    api = Api()
    assert sign_up(api, account).status_code == 200
    code = wait_for_mail(stack.mail_dir, account.email, subject="verification").code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    statuses = [api.post("/api/verify-account", {"email": account.email, "code": wrong}).status_code for _ in range(5)]
    assert statuses == [400] * 5
    assert api.post("/api/verify-account", {"email": account.email, "code": code}).status_code == 400
