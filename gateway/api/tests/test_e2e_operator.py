"""Operator-facing guarantees through the whole stack: request ids cross NATS into each service's log, seeding is
idempotent end to end."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import SEED_PASSWORD, SEEDED, Api, eventually, logged_in, seeded
from gateway.api.tests.tokens import unverified_claims

pytestmark = pytest.mark.e2e


def log_lines(stack: RunningStack, process: str, request_id: str) -> list[dict[str, Any]]:
    """The JSON log lines of one stack process that carry `request_id`."""
    (log_path,) = [p.log_path for p in stack.processes if p.name == process]
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        if request_id not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("request_id") == request_id:
            found.append(record)
    return found


def test_a_callers_request_id_shows_up_in_the_log_of_the_service_that_answered(stack: RunningStack) -> None:
    login_id, list_id = f"e2e-login-{uuid.uuid4().hex}", f"e2e-list-{uuid.uuid4().hex}"
    api = Api()

    login = api.post(
        "/api/login",
        {"slug": SEEDED["user"], "password": SEED_PASSWORD},
        bearer=False,
        csrf=False,
        headers={"X-Request-Id": login_id},
    )
    api.access_token = login.json()["accessToken"]
    listing = api.get("/api/user?limit=1", headers={"X-Request-Id": list_id})

    assert (login.status_code, login["X-Request-Id"]) == (200, login_id)
    assert (listing.status_code, listing["X-Request-Id"]) == (200, list_id)

    def logged() -> None:
        auth = log_lines(stack, "auth-bridge", login_id)
        main = log_lines(stack, "main-bridge", list_id)
        assert {(r["msg"], r.get("subject"), r.get("status")) for r in auth} >= {
            ("login succeeded", None, None),
            ("nats request", "auth.login.user", 200),
        }
        assert ("nats request", "user.find.all", 200) in {(r["msg"], r.get("subject"), r.get("status")) for r in main}
        assert {r["service"] for r in auth} == {"auth"}
        assert {r["service"] for r in main} == {"main"}

    eventually(logged, timeout=10)
    # Each id stays with its own request: the login never reached main_api, and the listing reached the auth service
    # at most for the signing keys (the gateway fetches the JWKS on behalf of the request that finds them missing).
    assert log_lines(stack, "main-bridge", login_id) == []
    assert {r.get("subject") for r in log_lines(stack, "auth-bridge", list_id)} <= {"auth.jwks.get"}


def test_seeding_again_changes_nothing_and_every_seeded_account_logs_in(stack: RunningStack) -> None:
    reader = logged_in(seeded("sys_admin"))

    def seeded_users() -> list[dict[str, Any]]:
        results = reader.get("/api/user?limit=100").json()["results"]
        users = [user for user in results if user["email"] in SEEDED.values()]
        assert sorted(user["email"] for user in users) == sorted(SEEDED.values())  # each exactly once
        return users

    before = eventually(seeded_users)  # the stack's own seed, replicated to main_api by events
    for _ in range(2):
        response = Api().get("/api/seed")
        assert (response.status_code, response.json()) == (200, {"ok": True})
    assert "Nothing to seed: every account already exists." in stack.manage("auth", "seed")

    assert seeded_users() == before
    for user in before:
        assert (user["active"], user["verifiedAccount"]) == (True, True)
    for role, email in SEEDED.items():
        api = logged_in(seeded(role))
        claims = unverified_claims(api.access_token or "")
        assert claims["roles"] == [role], email
        assert claims["sub"] == next(user["id"] for user in before if user["email"] == email)
