"""A person with a passkey, in a real browser: on the gateway's passkeys page (/api/auth/passkeys/) they log in with
a password, register a passkey on Chromium's virtual authenticator (CDP WebAuthn domain: a platform authenticator
with resident keys and user verification), log out, log in again with the passkey alone, and, since the account now
has a second factor, finish a password login with the passkey."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import CDPSession, Page, expect

from browser_tests.conftest import log_in_with_password, passkeys_page
from devstack.testing.stack import RunningStack


@pytest.fixture
def authenticator(page: Page) -> Iterator[tuple[CDPSession, str]]:
    """Chromium's virtual authenticator on this page: a platform authenticator that verifies its user."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    added: dict[str, Any] = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    yield cdp, added["authenticatorId"]
    cdp.send("WebAuthn.disable")


def test_a_person_registers_a_passkey_and_logs_in_with_it_alone_and_after_the_password(
    page: Page, stack: RunningStack, account: str, authenticator: tuple[CDPSession, str]
) -> None:
    cdp, authenticator_id = authenticator
    status = page.locator("#status")
    page.goto(passkeys_page(stack))
    expect(status).to_have_text("Not logged in.")

    log_in_with_password(page, account)
    expect(status).to_have_text("Logged in with a password.")
    expect(page.locator("#no-passkeys")).to_be_visible()

    page.fill("#passkey-name", "Test laptop")
    page.click("#register")
    expect(status).to_have_text("Passkey Test laptop added.")
    rows = page.locator("#passkeys tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator(".passkey-name")).to_have_text("Test laptop")
    expect(rows.locator(".passkey-last-used")).to_have_text("never")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert [credential["isResidentCredential"] for credential in stored] == [True]

    # A reload keeps the session (the refresh cookie gives a new access token).
    page.reload()
    expect(status).to_have_text("Logged in (session restored).")

    page.click("#logout")
    expect(status).to_have_text("Logged out.")
    expect(page.locator("#logged-out")).to_be_visible()

    # Passwordless: no account named, the authenticator offers its discoverable credential.
    page.fill("#slug", "")
    page.click("#passkey-login")
    expect(status).to_have_text("Logged in with a passkey.")
    expect(rows.locator(".passkey-name")).to_have_text("Test laptop")
    expect(rows.locator(".passkey-last-used")).not_to_have_text("never")
    after = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert after[0]["signCount"] >= 1

    # The password alone no longer logs in: the page asks for the passkey as the second factor.
    page.click("#logout")
    expect(status).to_have_text("Logged out.")
    log_in_with_password(page, account)
    expect(status).to_have_text("Password accepted: a second factor is needed.")
    expect(page.locator("#second-factor")).to_be_visible()
    page.click("#mfa-passkey")
    expect(status).to_have_text("Logged in with a password and a passkey.")
    expect(rows).to_have_count(1)
