"""The Django admin of the auth service: role-based access, and writes through the services (events, sessions)."""

from __future__ import annotations

import io

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from auth_service.accounts.models import User, VerificationCode
from auth_service.accounts.services import signing_keys
from auth_service.accounts.sessions import session_store_create, session_store_list
from auth_service.accounts.tests.conftest import logged_in
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.audit.crypto import identifier_digest
from auth_service.audit.models import SecurityEvent
from common.contracts import events
from common.outbox.models import OutboxEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cookie_sessions")]


def test_a_sys_admin_logs_in_with_its_password_and_sees_every_user() -> None:
    boss = UserFactory(roles=["sys_admin"], email="boss@example.com")
    UserFactory(roles=["admin"], email="admin@example.com")
    client = Client()

    response = client.post("/admin/login/?next=/admin/", {"username": "Boss@Example.com", "password": PASSWORD})
    assert response.status_code == 302
    listing = client.get("/admin/accounts/user/")

    assert listing.status_code == 200
    assert {u.email for u in listing.context["cl"].result_list} == {boss.email, "admin@example.com"}
    assert client.get("/admin/accounts/signingkey/").status_code == 200
    assert client.get("/admin/outbox/outboxevent/").status_code == 200


def test_an_admin_sees_only_the_users_it_may_manage_and_cannot_delete() -> None:
    admin = UserFactory(roles=["admin"])
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()
    client = logged_in(admin)

    listing = client.get("/admin/accounts/user/")

    assert [u.pk for u in listing.context["cl"].result_list] == [user.pk]
    assert client.get(f"/admin/accounts/user/{boss.pk}/change/").status_code == 302
    assert client.get(f"/admin/accounts/user/{user.pk}/delete/").status_code == 403
    assert client.get("/admin/accounts/signingkey/").status_code == 403


def test_users_and_guests_are_kept_out() -> None:
    for roles in (["user"], ["guest"]):
        response = logged_in(UserFactory(roles=roles)).get("/admin/accounts/user/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_changing_roles_in_the_admin_goes_through_the_service() -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory(name="Plain User")

    response = logged_in(boss).post(
        f"/admin/accounts/user/{user.pk}/change/",
        {"name": "Plain User", "username": user.username, "email": user.email, "roles": ["user", "admin"]},
    )

    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).roles == ["user", "admin"]
    assert list(OutboxEvent.objects.values_list("event_type", "payload__version")) == [(events.USER_ROLES_CHANGED, 2)]


def test_an_admin_cannot_grant_sys_admin_in_the_admin() -> None:
    admin = UserFactory(roles=["admin"])
    user = UserFactory()

    response = logged_in(admin).post(
        f"/admin/accounts/user/{user.pk}/change/",
        {"name": user.name, "username": user.username, "email": user.email, "roles": ["sys_admin"]},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == ["Admins cannot grant sys_admin"]
    assert User.objects.get(pk=user.pk).roles == ["user"]
    assert OutboxEvent.objects.count() == 0


def test_adding_a_user_in_the_admin_creates_it_through_the_service() -> None:
    boss = UserFactory(roles=["sys_admin"])

    response = logged_in(boss).post(
        "/admin/accounts/user/add/",
        {
            "name": "Added Person",
            "username": "addedperson",
            "email": "Added@Example.com",
            "roles": ["guest"],
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    created = User.objects.get(email="added@example.com")
    assert response.status_code == 302
    assert response["Location"] == "/admin/accounts/user/"
    assert (created.roles, created.is_verified) == (["guest"], False)
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == [events.USER_REGISTERED]
    assert [m.to for m in mail.outbox] == [["added@example.com"]]


def test_the_deactivate_action_emits_the_event_and_ends_the_sessions() -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()
    session_store_create(
        user_id=str(user.id), check_digest="0" * 64, expires_at=2_000_000_000, device="d", ip="i", epoch=0
    )

    response = logged_in(boss).post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [str(user.pk), str(boss.pk)]}
    )

    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).is_active is False
    assert User.objects.get(pk=boss.pk).is_active is True  # refused for itself, reported as an error
    assert session_store_list(str(user.id)) == []
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == [events.USER_DEACTIVATED]


def test_the_signing_key_admin_never_shows_the_private_key() -> None:
    boss = UserFactory(roles=["sys_admin"])
    key = signing_keys.signing_key_ensure_active()

    page = logged_in(boss).get(f"/admin/accounts/signingkey/{key.pk}/change/")

    assert page.status_code == 200
    assert "PRIVATE KEY" not in page.content.decode()
    assert key.kid in page.content.decode()


def test_createsuperuser_makes_a_verified_sys_admin_through_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)

    call_command(
        "createsuperuser",
        interactive=False,
        email="Root@Example.com",
        username="rootuser",
        name="Root User",
        stdout=io.StringIO(),
    )

    root = User.objects.get()
    assert (root.email, root.roles, root.is_verified, root.is_staff, root.is_superuser) == (
        "root@example.com",
        ["sys_admin"],
        True,
        True,
        True,
    )
    assert root.check_password(PASSWORD)
    assert list(OutboxEvent.objects.values_list("event_type", "payload__roles")) == [
        (events.USER_REGISTERED, ["sys_admin"])
    ]
    assert mail.outbox == []


def test_change_roles_asks_on_an_intermediate_page_then_goes_through_the_service() -> None:
    boss = UserFactory(roles=["sys_admin"])
    first, second = UserFactory(roles=["guest"]), UserFactory(roles=["guest"])
    client = logged_in(boss)
    selected = {"action": "change_roles", "_selected_action": [str(first.pk), str(second.pk)]}

    page = client.post("/admin/accounts/user/", selected)

    assert page.status_code == 200
    assert page.templates[0].name == "admin/accounts/user/change_roles.html"
    assert page.context["form"].initial == {"roles": ["guest"]}
    assert OutboxEvent.objects.count() == 0

    done = client.post("/admin/accounts/user/", {**selected, "roles": ["user", "admin"], "apply": "Change roles"})

    assert done.status_code == 302
    assert {u.roles[-1] for u in User.objects.filter(pk__in=[first.pk, second.pk])} == {"admin"}
    assert sorted(OutboxEvent.objects.values_list("event_type", flat=True)) == [events.USER_ROLES_CHANGED] * 2
    assert SecurityEvent.objects.filter(kind="roles_changed", actor_id=boss.id).count() == 2


def test_change_roles_without_a_role_shows_the_form_again_and_changes_nothing() -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()

    page = logged_in(boss).post(
        "/admin/accounts/user/", {"action": "change_roles", "_selected_action": [str(user.pk)], "apply": "Change roles"}
    )

    assert page.status_code == 200
    assert page.context["form"].errors == {"roles": ["This field is required."]}
    assert User.objects.get(pk=user.pk).roles == ["user"]
    assert OutboxEvent.objects.count() == 0


def test_an_admin_cannot_grant_sys_admin_through_the_change_roles_action() -> None:
    admin = UserFactory(roles=["admin"])
    user = UserFactory()

    response = logged_in(admin).post(
        "/admin/accounts/user/",
        {"action": "change_roles", "_selected_action": [str(user.pk)], "roles": ["sys_admin"], "apply": "Change roles"},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [f"{user.email}: Admins cannot grant sys_admin"]
    assert User.objects.get(pk=user.pk).roles == ["user"]
    assert OutboxEvent.objects.count() == 0
    assert list(SecurityEvent.objects.values_list("kind", "outcome", "reason")) == [
        ("roles_changed", "failure", "forbidden")
    ]


def test_resend_verification_mails_a_new_code_to_unverified_users_only() -> None:
    boss = UserFactory(roles=["sys_admin"])
    pending = UserFactory(is_verified=False)
    verified = UserFactory()

    response = logged_in(boss).post(
        "/admin/accounts/user/",
        {"action": "resend_verification", "_selected_action": [str(pending.pk), str(verified.pk)]},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [
        f"{verified.email}: not sent (already verified or inactive)",
        "Sent a new code to 1 user.",
    ]
    assert [m.to for m in mail.outbox] == [[pending.email]]
    assert VerificationCode.objects.get().user_id == pending.id


def test_an_admin_acts_only_on_the_users_it_may_manage_whatever_ids_it_posts() -> None:
    admin = UserFactory(roles=["admin"])
    peer, boss = UserFactory(roles=["admin"]), UserFactory(roles=["sys_admin"])
    user = UserFactory()
    client = logged_in(admin)

    for action in ("deactivate_users", "end_sessions", "resend_verification"):
        client.post("/admin/accounts/user/", {"action": action, "_selected_action": [str(peer.pk), str(boss.pk)]})
    client.post(
        "/admin/accounts/user/",
        {"action": "change_roles", "_selected_action": [str(boss.pk)], "roles": ["guest"], "apply": "Change roles"},
    )
    client.post("/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [str(user.pk)]})

    assert list(User.objects.filter(is_active=False).values_list("pk", flat=True)) == [user.pk]
    assert User.objects.get(pk=boss.pk).roles == ["sys_admin"]
    assert list(OutboxEvent.objects.values_list("event_type", "aggregate_id")) == [(events.USER_DEACTIVATED, user.id)]
    assert mail.outbox == []


def test_an_admin_sees_only_the_accounts_app_and_an_inactive_admin_nothing() -> None:
    admin = UserFactory(roles=["admin"])
    client = logged_in(admin)

    index = client.get("/admin/")

    assert [app["app_label"] for app in index.context["app_list"]] == ["accounts"]
    assert [m["object_name"] for m in index.context["app_list"][0]["models"]] == ["User"]
    for forbidden in ("/admin/accounts/role/", "/admin/audit/securityevent/", "/admin/outbox/outboxevent/"):
        assert client.get(forbidden).status_code == 403, forbidden
    assert client.get("/admin/accounts/user/add/").status_code == 403
    User.objects.filter(pk=admin.pk).update(is_active=False)
    assert client.get("/admin/accounts/user/").status_code == 302


def test_the_security_log_is_read_only_and_filterable_for_a_sys_admin() -> None:
    boss = UserFactory(roles=["sys_admin"])
    user = UserFactory()
    login_event = SecurityEvent.objects.create(kind="login", outcome="success", user_id=user.id, ip="192.0.2.5")
    unknown = SecurityEvent.objects.create(
        kind="login", outcome="failure", reason="unknown_account", identifier_digest=identifier_digest("ghost@x.org")
    )
    SecurityEvent.objects.create(kind="key_rotated", outcome="success")
    client = logged_in(boss)

    def listed(query: str) -> list[int]:
        response = client.get(f"/admin/audit/securityevent/?{query}")
        assert response.status_code == 200, query
        return [event.pk for event in response.context["cl"].result_list]

    assert listed("kind__exact=login&outcome__exact=failure") == [unknown.pk]
    assert listed(f"q={user.id}") == [login_event.pk]
    assert listed("q=192.0.2.5") == [login_event.pk]
    assert listed("q=Ghost@X.org") == [unknown.pk]
    assert listed("q=not-an-id-nor-an-ip") == []
    changelist = client.get("/admin/audit/securityevent/").context["cl"]
    dates = next(spec for spec in changelist.filter_specs if spec.title == "created at")
    today = next(choice["query_string"] for choice in dates.choices(changelist) if choice["display"] == "Today")
    assert len(listed(today.lstrip("?"))) == 3
    assert client.get(f"/admin/audit/securityevent/{login_event.pk}/change/").status_code == 200
    assert client.get("/admin/audit/securityevent/add/").status_code == 403
    assert client.post(f"/admin/audit/securityevent/{login_event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert SecurityEvent.objects.count() == 3
