"""A person with an authenticator app, in a real browser: on the gateway's sign-in page (/api/auth/passkeys/) they
log in with a password, set up TOTP (the test plays the app: it reads the secret the page shows and computes codes
with pyotp), confirm it, see their recovery codes once, log out; the password alone then asks for the app's code,
which logs them in; a recovery code does too, once. With the password and a code they renew their recovery codes
and turn the app off."""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import Page, expect

from browser_tests.conftest import PASSWORD, log_in_with_password, passkeys_page
from devstack.testing.stack import RunningStack

TOTP_STEP_SECONDS = 30


def next_step_code(secret: str) -> str:
    """The app's code of the next time step: within the server's one step of drift, and never the step a code was
    already used in (the confirmation used the current one), so it is no replay."""
    return pyotp.TOTP(secret).at(time.time() + TOTP_STEP_SECONDS)


def wrong_code(secret: str) -> str:
    """A code of none of the steps the server accepts now."""
    totp = pyotp.TOTP(secret)
    now = time.time()
    accepted = {totp.at(now + drift * TOTP_STEP_SECONDS) for drift in (-1, 0, 1, 2)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444") if code not in accepted)


def test_a_person_sets_up_an_authenticator_app_and_logs_in_with_its_code_and_a_recovery_code(
    page: Page, stack: RunningStack, account: str
) -> None:
    status = page.locator("#status")
    page.goto(passkeys_page(stack))
    expect(status).to_have_text("Not logged in.")
    log_in_with_password(page, account)
    expect(status).to_have_text("Logged in with a password.")
    expect(page.locator("#totp-state")).to_have_text("off")
    expect(page.locator("#recovery-left-line")).to_be_hidden()

    # Setup: a QR code (our server's SVG, shown as an <svg> element) and the secret as text.
    page.click("#totp-setup")
    expect(page.locator("#totp-enrol")).to_be_visible()
    qr = page.locator("#totp-qr svg")
    expect(qr).to_be_visible()
    assert qr.locator("path").count() >= 1
    assert qr.evaluate("svg => svg.namespaceURI") == "http://www.w3.org/2000/svg"
    secret = page.locator("#totp-secret").inner_text().strip()
    assert len(secret) >= 16

    # A wrong code turns nothing on; the app's current code does, and the ten recovery codes are shown once.
    page.fill("#totp-confirm-code", wrong_code(secret))
    page.click("#totp-confirm")
    expect(status).to_have_class("error")
    expect(page.locator("#totp-state")).to_have_text("off")
    page.fill("#totp-confirm-code", pyotp.TOTP(secret).now())
    page.click("#totp-confirm")
    expect(status).to_have_text("Authenticator app on: save your recovery codes now.")
    expect(page.locator("#totp-state")).to_have_text("on")
    expect(page.locator("#recovery-codes-left")).to_have_text("10")
    expect(page.locator("#totp-enrol")).to_be_hidden()
    expect(page.locator("#totp-setup")).to_be_hidden()
    codes = page.locator("#recovery-code-list li")
    expect(codes).to_have_count(10)
    recovery_codes = codes.all_inner_texts()
    assert len(set(recovery_codes)) == 10
    page.click("#recovery-codes-saved")
    expect(page.locator("#recovery-codes")).to_be_hidden()
    expect(codes).to_have_count(0)

    # The password alone no longer logs in: the page asks for the app's code (no passkey on this account).
    page.click("#logout")
    expect(status).to_have_text("Logged out.")
    log_in_with_password(page, account)
    expect(status).to_have_text("Password accepted: a second factor is needed.")
    expect(page.locator("#mfa-code-form")).to_be_visible()
    expect(page.locator("#mfa-passkey")).to_be_hidden()
    page.fill("#mfa-code", next_step_code(secret))
    page.click("#mfa-code-submit")
    expect(status).to_have_text("Logged in with a password and a code from the app.")
    expect(page.locator("#logged-in")).to_be_visible()
    expect(page.locator("#totp-state")).to_have_text("on")  # as GET /api/auth/mfa answers it
    expect(page.locator("#recovery-codes-left")).to_have_text("10")

    # A recovery code instead of the app: it logs in once, and one fewer is left.
    page.click("#logout")
    expect(status).to_have_text("Logged out.")
    log_in_with_password(page, account)
    expect(page.locator("#mfa-code-form")).to_be_visible()
    page.click("#mfa-use-recovery")
    expect(page.locator("#mfa-recovery-form")).to_be_visible()
    page.fill("#mfa-recovery-code", recovery_codes[0])
    page.click("#mfa-recovery-submit")
    expect(status).to_have_text("Logged in with a password and a recovery code.")
    expect(page.locator("#recovery-codes-left")).to_have_text("9")

    # The same recovery code a second time: refused, the page stays on the second step; another one works.
    page.click("#logout")
    expect(status).to_have_text("Logged out.")
    log_in_with_password(page, account)
    page.click("#mfa-use-recovery")
    page.fill("#mfa-recovery-code", recovery_codes[0])
    page.click("#mfa-recovery-submit")
    expect(status).to_have_class("error")
    expect(page.locator("#second-factor")).to_be_visible()
    page.fill("#mfa-recovery-code", recovery_codes[1])
    page.click("#mfa-recovery-submit")
    expect(status).to_have_text("Logged in with a password and a recovery code.")
    expect(page.locator("#recovery-codes-left")).to_have_text("8")

    # New recovery codes with the password and a code: ten new ones, shown once.
    page.fill("#manage-password", PASSWORD)
    page.fill("#manage-code", recovery_codes[2])
    page.click("#recovery-codes-new")
    expect(status).to_have_text("New recovery codes: save them now; the earlier ones no longer work.")
    expect(codes).to_have_count(10)
    new_codes = codes.all_inner_texts()
    assert not set(new_codes) & set(recovery_codes)
    expect(page.locator("#recovery-codes-left")).to_have_text("10")

    # The app turned off (after the page's confirmation) with the password and a new code: the password alone logs
    # in again.
    page.once("dialog", lambda dialog: dialog.accept())
    page.fill("#manage-password", PASSWORD)
    page.fill("#manage-code", new_codes[0])
    page.click("#totp-off")
    expect(status).to_have_text("Authenticator app off.")
    expect(page.locator("#totp-state")).to_have_text("off")
    expect(page.locator("#totp-setup")).to_be_visible()
    expect(page.locator("#totp-manage-form")).to_be_hidden()
    page.click("#logout")
    expect(status).to_have_text("Logged out.")
    log_in_with_password(page, account)
    expect(status).to_have_text("Logged in with a password.")
