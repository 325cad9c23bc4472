"""A person in a real browser: the auth admin's deactivation reaches main_api's admin, the browsable API is usable
from login to a submitted form, CSRF included, without pasting a token, and the docs UI lists the API and tries it
out. Every page loads from the stack alone, within its Content-Security-Policy (browser_tests/conftest.py)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from playwright.sync_api import Page, expect

from browser_tests.conftest import OPERATOR
from devstack.testing.stack import RunningStack
from gateway.api.tests.test_schema import SPEC_OPERATIONS

SYS_ADMIN = "sys-admin@test.com"
SEED_PASSWORD = "Password123!"
EVENT_TIMEOUT = 20.0
AUTH_ADMIN, MAIN_ADMIN = "authmesh: identity", "authmesh: main API"


def admin_login(page: Page, base_url: str, username: str, password: str, *, site: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    expect(page).to_have_title(f"Log in | {site}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text(site)
    expect(page).to_have_url(f"{base_url}/admin/")


def open_until_listed(page: Page, url: str, text: str) -> None:
    """Load `url` until its change list shows a row with `text` (an event reaching main_api takes a moment).

    Each round trip paces the next; no fixed sleep."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    rows = page.locator("#result_list tbody tr", has_text=text)
    while True:
        page.goto(url)
        if rows.count() == 1:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no row with {text!r} at {url} after {EVENT_TIMEOUT:.0f} s")


def response_json(page: Page) -> Any:
    """The JSON body the browsable page shows under its status line and headers."""
    text = page.locator(".response-info pre").inner_text()
    return json.loads(text[text.index("\n\n") :])


def submit_raw_form(page: Page, container: str, body: dict[str, Any], button: str) -> None:
    form = page.locator(f"{container} form")
    form.locator("textarea[name=_content]").fill(json.dumps(body))
    form.locator(button).click()


def test_a_user_deactivated_in_the_auth_admin_turns_inactive_in_main_apis_admin(
    page: Page, stack: RunningStack
) -> None:
    auth, main = stack.urls["auth"], stack.urls["main"]
    target = "user@test.com"

    admin_login(page, auth, SYS_ADMIN, SEED_PASSWORD, site=AUTH_ADMIN)
    page.goto(f"{auth}/admin/accounts/user/?q={target}")
    page.locator("#result_list tbody tr", has_text=target).locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "deactivate_users")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist li.success")).to_have_text("Deactivated 1 user.")
    expect(page.locator("#result_list tbody tr", has_text=target).locator("td.field-is_active img")).to_have_attribute(
        "alt", "False"
    )

    admin_login(page, main, *OPERATOR, site=MAIN_ADMIN)
    open_until_listed(page, f"{main}/admin/users/user/?is_active__exact=0&q={target}", target)

    # Both admins stay logged in side by side in one browser (their cookies do not collide).
    page.goto(f"{auth}/admin/accounts/user/")
    expect(page.locator("#user-tools")).to_contain_text(SYS_ADMIN)


def test_a_person_logs_in_through_the_browsable_api_browses_users_and_submits_a_form(
    page: Page, stack: RunningStack
) -> None:
    gateway = stack.urls["gateway"]

    page.goto(f"{gateway}/api/user")
    expect(page.locator(".response-info")).to_contain_text("HTTP 401 Unauthorized")
    page.click("#log-in")
    expect(page).to_have_url(f"{gateway}/api/login")
    submit_raw_form(page, "#post-generic-content-form", {"slug": SYS_ADMIN, "password": SEED_PASSWORD}, "button")
    expect(page.locator(".response-info")).to_contain_text("HTTP 200 OK")
    assert set(response_json(page)) == {"accessToken"}

    page.goto(f"{gateway}/api/user?limit=100")
    expect(page.locator("#signed-in")).to_have_text("Signed in (sys_admin)")
    expect(page.locator(".response-info")).to_contain_text("HTTP 200 OK")
    users = {user["email"]: user for user in response_json(page)["results"]}
    assert {SYS_ADMIN, "guest@test.com"} <= set(users)

    page.goto(f"{gateway}/api/user/{users['guest@test.com']['id']}")
    expect(page.locator(".response-info")).to_contain_text("guest@test.com")
    # The PATCH goes out with the CSRF header, which the page's script copies from the CSRF cookie.
    submit_raw_form(page, "#put-generic-content-form", {"name": "Renamed Guest"}, "button[data-method=PATCH]")
    expect(page.locator(".response-info")).to_contain_text('"name": "Renamed Guest"')
    expect(page.locator(".response-info")).to_contain_text("HTTP 200 OK")

    page.click("#logout-form button")
    expect(page.locator("#log-in")).to_be_visible()
    page.goto(f"{gateway}/api/user")
    expect(page.locator(".response-info")).to_contain_text("HTTP 401 Unauthorized")
    assert [c["name"] for c in page.context.cookies(gateway) if c["name"] in {"access", "Authentication"}] == []
    assert re.search(r"Renamed Guest", page.content()) is None


def test_the_docs_ui_lists_the_operations_of_the_spec_and_tries_out_the_jwks(page: Page, stack: RunningStack) -> None:
    gateway = stack.urls["gateway"]

    page.goto(f"{gateway}/api/docs/")
    summaries = page.locator(".opblock-summary")
    expect(summaries).to_have_count(len(SPEC_OPERATIONS))
    listed = {
        (summary.locator(".opblock-summary-path").get_attribute("data-path"), method.lower())
        for summary in summaries.all()
        for method in [summary.locator(".opblock-summary-method").inner_text()]
    }
    assert listed == SPEC_OPERATIONS

    jwks = page.locator(".opblock", has=page.locator('.opblock-summary-path[data-path="/.well-known/jwks.json"]'))
    jwks.locator(".opblock-summary").click()
    jwks.get_by_role("button", name="Try it out").click()
    jwks.get_by_role("button", name="Execute").click()
    answer = jwks.locator(".live-responses-table tr.response")
    expect(answer.locator(".response-col_status")).to_have_text("200")
    body = json.loads(answer.locator(".response-col_description .highlight-code code").inner_text())
    assert body["keys"] and {key["kty"] for key in body["keys"]} == {"RSA"}
