"""Browser tests: the whole stack with its HTTP servers, and Debian's headless Chromium driven by Playwright.

Run with `--ds=gateway.settings.test browser_tests` inside the test devstack (see the Makefile). Chromium comes from
the distribution (scripts/ensure-browser.sh), never from `playwright install`; CHROMIUM_PATH overrides its path.
A failed test leaves a screenshot of each open page under var/screenshots/.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, sync_playwright

from devstack.testing.stack import REPO_ROOT, RunningStack, run_manage, running_stack

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / "var" / "screenshots"
# Generous for a loaded CI machine; every wait is on a condition, so a passing run never waits this long.
TIMEOUT_MS = 15_000
# main_api's admin has its own staff accounts (its users table is the read model, not identities).
OPERATOR = ("operator", "Operator-Pass-4821")
# URLs that never leave the browser.
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
# The password of the accounts the sign-in page tests make for themselves.
PASSWORD = "Signin-Owner-5821!"
_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    """Fresh databases, bridges, Celery and the three HTTP servers, seeded; plus a staff account in main_api."""
    with running_stack(http=True, db_prefix="browser_", name="browser") as running:
        username, password = OPERATOR
        run_manage(
            "main",
            "createsuperuser",
            "--no-input",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            env={**running.env, "DJANGO_SUPERUSER_PASSWORD": password},
        )
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-browser.sh (or set CHROMIUM_PATH)", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Kept on the item, so the context fixture knows at teardown whether to take screenshots.
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


class PageGuard:
    """What the pages of one browser did that they must not: a request to a host other than the stack's own (a
    CDN, a validator, fonts...), a resource or script the Content-Security-Policy refused, an uncaught script error."""

    def __init__(self, context: BrowserContext, own_hosts: set[str]) -> None:
        self.own_hosts = own_hosts
        self.off_host: list[str] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        context.on("request", self._on_request)
        context.on("console", self._on_console)
        context.on("weberror", lambda error: self.errors.append(str(error.error)))

    def _on_request(self, request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme not in LOCAL_SCHEMES and url.hostname not in self.own_hosts:
            self.off_host.append(f"{request.method} {request.url}")

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.refused.append(message.text)

    def problems(self) -> list[str]:
        return [
            *(f"request to another host: {entry}" for entry in self.off_host),
            *(f"refused by the CSP: {entry}" for entry in self.refused),
            *(f"script error: {entry}" for entry in self.errors),
        ]


@pytest.fixture
def context(browser: Browser, stack: RunningStack, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """One person's browser: one cookie jar for the gateway and both admins, as on a developer's machine.

    A test fails if a page it opened reached a host other than the stack's own, ran into the CSP or threw."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    # The stack's hosts, and `localhost`: the passkeys page is opened there (WebAuthn refuses an IP address).
    own_hosts = {urlsplit(url).hostname or "" for url in stack.urls.values()} | {"localhost"}
    guard = PageGuard(context, own_hosts)
    yield context
    reports = request.node.stash.get(_reports, {})
    if any(report.failed for report in reports.values()):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for index, page in enumerate(context.pages):
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{index}.png"), full_page=True)
    context.close()
    problems = guard.problems()
    if problems:
        pytest.fail("the pages of this test:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def account(stack: RunningStack) -> str:
    """A verified account of this test's own, with PASSWORD (the seeded ones are changed by other tests)."""
    email = f"signin-{uuid.uuid4().hex[:8]}@example.com"
    run_manage(
        "auth",
        "createsuperuser",
        "--no-input",
        "--email",
        email,
        "--username",
        f"signin{uuid.uuid4().hex[:8]}",
        "--name",
        "Signin Owner",
        env={**stack.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    return email


def passkeys_page(stack: RunningStack) -> str:
    """The gateway's sign-in and second factors page."""
    # `localhost`, the development relying-party id: a browser refuses WebAuthn on an IP address.
    port = urlsplit(stack.urls["gateway"]).port
    return f"http://localhost:{port}/api/auth/passkeys/"


def log_in_with_password(page: Page, account: str) -> None:
    """The first step on the sign-in page: the account and PASSWORD, then the password button."""
    page.fill("#slug", account)
    page.fill("#password", PASSWORD)
    page.click("#password-login")
