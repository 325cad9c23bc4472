"""Service accounts: create_client, token issuance over NATS, rotation, disabling, the admin, the security log."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django_redis import get_redis_connection

from auth_service.accounts.tests.conftest import AuthApi
from auth_service.accounts.tests.factories import UserFactory
from auth_service.audit.crypto import identifier_digest
from auth_service.audit.models import SecurityEvent
from auth_service.clients.liveness import client_mark
from auth_service.clients.models import ServiceClient
from common.contracts import subjects
from common.contracts.oauth import client_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("forget_markers")]
Kind = SecurityEvent.Kind


def create(name: str = "reporting", *scopes: str) -> tuple[str, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = [arg for scope in scopes or ("users:read",) for arg in ("--scope", scope)]
    call_command("create_client", name, *args, stdout=out, stderr=err)
    text = out.getvalue()
    client_id = re.search(r"^client_id: (\S+)$", text, re.M)
    secret = re.search(r"^client_secret: (\S+)$", text, re.M)
    assert client_id and secret
    return client_id.group(1), secret.group(1), err.getvalue()


def marker(client_id: str) -> str | None:
    value = get_redis_connection("default").get(client_key(client_id))
    return value.decode() if value is not None else None


def token(auth: AuthApi, client_id: str, secret: str, scope: str | None = None) -> dict[str, Any]:
    data = {"clientId": client_id, "clientSecret": secret, **({"scope": scope} if scope else {})}
    return auth(subjects.AUTH_OAUTH_TOKEN, data, client={"ip": "10.1.2.3", "user_agent": "svc/1.0"})


def events(kind: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(kind=kind).order_by("id"))


def test_create_client_prints_the_secret_once_and_stores_only_its_digest() -> None:
    client_id, secret, notice = create("reporting", "users:read")

    client = ServiceClient.objects.get(client_id=client_id)
    assert (client.name, client.scopes, client.is_active, client.epoch) == ("reporting", ["users:read"], True, 1)
    assert secret not in str(ServiceClient.objects.filter(pk=client.pk).values().get())
    assert len(client.secret_digest) == 64 and client.secret_digest != secret
    assert "shown only this once" in notice
    assert marker(client_id) == "1"
    [created] = events(Kind.CLIENT_CREATED)
    assert created.detail == {"client_id": client_id, "epoch": 1, "name": "reporting", "scopes": ["users:read"]}
    assert secret not in str(created.detail)


def test_a_token_is_rs256_from_the_access_token_keys_with_client_claims(auth: AuthApi) -> None:
    client_id, secret, _ = create()

    reply = token(auth, client_id, secret)

    assert set(reply) == {"accessToken", "expiresIn", "scope"}
    assert (reply["expiresIn"], reply["scope"]) == (900, "users:read")
    header, claims = auth.decode_access(reply["accessToken"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
    assert set(claims) == {"iss", "aud", "sub", "client_id", "scope", "cep", "jti", "iat", "exp"}
    assert claims["sub"] == claims["client_id"] == client_id
    assert (claims["scope"], claims["cep"], claims["exp"] - claims["iat"]) == ("users:read", 1, 900)
    [issued] = events(Kind.CLIENT_TOKEN)
    assert (issued.outcome, issued.ip, issued.user_agent) == ("success", "10.1.2.3", "svc/1.0")
    assert issued.detail == {"client_id": client_id, "epoch": 1, "scope": "users:read"}


def test_a_wrong_secret_and_an_unknown_client_are_the_same_refusal(auth: AuthApi) -> None:
    client_id, secret, _ = create()

    wrong = auth.error(subjects.AUTH_OAUTH_TOKEN, {"clientId": client_id, "clientSecret": secret + "x"})
    unknown = auth.error(subjects.AUTH_OAUTH_TOKEN, {"clientId": "nobody-at-all", "clientSecret": secret})

    for error in (wrong, unknown):
        assert (error.status, error.code, error.message) == (401, "invalid_client", "Client authentication failed")
    failures = events(Kind.CLIENT_TOKEN)
    assert [(e.outcome, e.reason) for e in failures] == [("failure", "bad_secret"), ("failure", "unknown_client")]
    assert failures[1].identifier_digest == identifier_digest("nobody-at-all")
    assert all(secret not in str(e.detail) for e in failures)


def test_a_scope_the_client_does_not_hold_is_invalid_scope(auth: AuthApi) -> None:
    client_id, secret, _ = create()

    error = auth.error(
        subjects.AUTH_OAUTH_TOKEN, {"clientId": client_id, "clientSecret": secret, "scope": "users:read users:write"}
    )

    assert (error.status, error.code) == (400, "invalid_scope")
    assert [e.reason for e in events(Kind.CLIENT_TOKEN)] == ["invalid_scope"]


def test_rotation_and_disabling_move_the_marker_and_refuse_the_old_secret(auth: AuthApi) -> None:
    client_id, secret, _ = create()
    out = io.StringIO()

    call_command("rotate_client_secret", client_id, stdout=out)
    new_secret = re.search(r"^client_secret: (\S+)$", out.getvalue(), re.M)
    assert new_secret
    assert marker(client_id) == "2"
    assert auth.error(subjects.AUTH_OAUTH_TOKEN, {"clientId": client_id, "clientSecret": secret}).code == (
        "invalid_client"
    )
    assert token(auth, client_id, new_secret.group(1))["scope"] == "users:read"

    call_command("disable_client", client_id, stdout=io.StringIO())
    assert marker(client_id) is None
    disabled = auth.error(subjects.AUTH_OAUTH_TOKEN, {"clientId": client_id, "clientSecret": new_secret.group(1)})
    assert disabled.code == "invalid_client"
    call_command("disable_client", client_id, "--enable", stdout=io.StringIO())
    assert marker(client_id) == "3"  # the disabling bumped the epoch: tokens from before it stay refused
    assert [e.kind for e in SecurityEvent.objects.filter(kind__startswith="client_").order_by("id")] == [
        Kind.CLIENT_CREATED,
        Kind.CLIENT_SECRET_ROTATED,
        Kind.CLIENT_TOKEN,
        Kind.CLIENT_TOKEN,
        Kind.CLIENT_DISABLED,
        Kind.CLIENT_TOKEN,
        Kind.CLIENT_ENABLED,
    ]


def test_a_marker_never_moves_back() -> None:
    client_id, _, _ = create()
    client_mark(client_id, 5)
    client_mark(client_id, 1)
    assert marker(client_id) == "5"


def test_the_admin_lists_searches_disables_and_rotates_through_the_services() -> None:
    client_id, secret, _ = create("billing-sync")
    create("reporting")
    boss = UserFactory(roles=["sys_admin"])
    browser = Client()
    browser.force_login(boss)

    listing = browser.get("/admin/clients/serviceclient/", {"q": "billing"})
    assert [c.client_id for c in listing.context["cl"].result_list] == [client_id]
    page = browser.get(f"/admin/clients/serviceclient/{ServiceClient.objects.get(client_id=client_id).pk}/change/")
    assert page.status_code == 200
    assert ServiceClient.objects.get(client_id=client_id).secret_digest not in page.content.decode()
    pk = str(ServiceClient.objects.get(client_id=client_id).pk)

    rotated = browser.post("/admin/clients/serviceclient/", {"action": "rotate_secret", "_selected_action": [pk]})
    assert rotated.status_code == 200
    assert "no-store" in rotated["Cache-Control"]
    shown = re.search(r'class="client-secret">([^<]+)<', rotated.content.decode())
    assert shown and shown.group(1) != secret
    assert ServiceClient.objects.get(client_id=client_id).epoch == 2
    browser.post("/admin/clients/serviceclient/", {"action": "disable", "_selected_action": [pk]})
    assert ServiceClient.objects.get(client_id=client_id).is_active is False
    assert marker(client_id) is None
    actors = {
        e.actor_id for e in SecurityEvent.objects.filter(kind__in=[Kind.CLIENT_SECRET_ROTATED, Kind.CLIENT_DISABLED])
    }
    assert actors == {boss.id}


def test_an_admin_who_is_not_sys_admin_cannot_see_the_clients() -> None:
    create()
    browser = Client()
    browser.force_login(UserFactory(roles=["admin"]))
    assert browser.get("/admin/clients/serviceclient/").status_code == 403


def test_create_client_prints_shell_exports_for_eval() -> None:
    out = io.StringIO()
    call_command("create_client", "reporting", "--scope", "users:read", "--shell", stdout=out, stderr=io.StringIO())
    match = re.fullmatch(r"export CLIENT_ID=([\w-]+) CLIENT_SECRET=([\w-]+)\n", out.getvalue())
    assert match
    assert ServiceClient.objects.get(client_id=match.group(1)).secret_digest != match.group(2)
