"""Passkeys through their NATS subjects, with a software authenticator: registration and login ceremonies, single-use
and expiring challenges, origin, user verification, signature counters, the second factor, and management."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.core import mail

from auth_service.accounts.mfa_tokens import METHOD_PASSKEY, mfa_token_issue
from auth_service.accounts.models import Passkey, PasskeyUserHandle, User
from auth_service.accounts.sessions import credential_epoch_get
from auth_service.accounts.tests.authenticator import SoftAuthenticator, b64url, unb64url
from auth_service.accounts.tests.conftest import AuthApi, agent_of
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from auth_service.audit.models import SecurityEvent
from common.contracts import subjects

CLIENT = {"ip": "10.0.0.7", "user_agent": "passkey-browser"}
INVALID = {"statusCode": 401, "error": "Unauthorized", "message": "Invalid credentials", "code": "unauthorized"}
INVALID_MFA = {**INVALID, "message": "Invalid or expired second-factor code or token"}


def register(auth: AuthApi, user: User, device: SoftAuthenticator | None = None, name: str = "Laptop") -> Any:
    device = device or SoftAuthenticator()
    options = auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user))
    credential = device.create(options)
    reply = auth(subjects.AUTH_PASSKEY_REGISTER_VERIFY, {"credential": credential, "name": name}, agent=agent_of(user))
    return device, reply


def login_options(auth: AuthApi, slug: str | None = None) -> dict[str, Any]:
    return auth(subjects.AUTH_PASSKEY_LOGIN_OPTIONS, {"slug": slug} if slug else {}, client=CLIENT)


def login(auth: AuthApi, credential: dict[str, Any], mfa_token: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"credential": credential}
    if mfa_token:
        data["mfaToken"] = mfa_token
    return auth(subjects.AUTH_PASSKEY_LOGIN_VERIFY, data, client=CLIENT)


def login_error(auth: AuthApi, credential: dict[str, Any], mfa_token: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"credential": credential, **({"mfaToken": mfa_token} if mfa_token else {})}
    return auth.error(subjects.AUTH_PASSKEY_LOGIN_VERIFY, data, client=CLIENT).to_body()


def failures(user: User) -> list[str]:
    """The reasons of the user's failed logins, passwordless or as a second factor, oldest first."""
    events = SecurityEvent.objects.filter(user_id=user.id, kind__in=["login", "second_factor"], outcome="failure")
    return list(events.order_by("id").values_list("reason", flat=True))


def mfa_token(user: User, methods: tuple[str, ...] = (METHOD_PASSKEY,)) -> str:
    """What a right password gives an account with a second factor (services/login.py), from this client."""
    epoch = credential_epoch_get(str(user.id))
    return mfa_token_issue(
        user_id=str(user.id), epoch=epoch, methods=methods, ip=CLIENT["ip"], user_agent=CLIENT["user_agent"]
    )


def test_registration_stores_the_credential_under_a_random_user_handle_and_mails_the_user(auth: AuthApi) -> None:
    user = UserFactory()

    options = auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user))

    assert options["rp"] == {"id": "localhost", "name": "Authmesh"}
    assert options["user"]["name"] == user.email
    handle = unb64url(options["user"]["id"])
    assert len(handle) == 32 and handle != user.id.bytes
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []
    device = SoftAuthenticator()
    reply = auth(
        subjects.AUTH_PASSKEY_REGISTER_VERIFY,
        {"credential": device.create(options), "name": "  My   laptop "},
        agent=agent_of(user),
    )

    passkey = Passkey.objects.get(user=user)
    assert reply == {"id": str(passkey.id), "name": "My laptop", "createdAt": reply["createdAt"], "lastUsedAt": None}
    assert bytes(passkey.credential_id) == device.credential_id
    assert (passkey.sign_count, passkey.transports) == (0, ["internal"])
    assert bytes(PasskeyUserHandle.objects.get(user=user).handle) == handle
    assert [m.subject for m in mail.outbox] == ["A passkey was added to your account"]
    assert SecurityEvent.objects.filter(user_id=user.id, kind="passkey_added", outcome="success").count() == 1
    again = auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user))
    assert unb64url(again["user"]["id"]) == handle
    assert [entry["id"] for entry in again["excludeCredentials"]] == [b64url(device.credential_id)]
    assert auth(subjects.AUTH_PASSKEY_LIST, {}, agent=agent_of(user)) == [reply]


def test_a_registration_challenge_is_good_once_for_its_user_and_origin_and_expires(
    auth: AuthApi, settings: Any
) -> None:
    user, other = UserFactory(), UserFactory()
    device = SoftAuthenticator()
    options = auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user))
    credential = device.create(options)

    def refused(agent_user: User, credential: dict[str, Any]) -> dict[str, Any]:
        data = {"credential": credential, "name": "Key"}
        return auth.error(subjects.AUTH_PASSKEY_REGISTER_VERIFY, data, agent=agent_of(agent_user)).to_body()

    # Another user cannot use it (and it is spent), nor can its owner afterwards.
    assert refused(other, credential)["message"] == "The passkey could not be registered: start again"
    assert refused(user, credential)["statusCode"] == 400
    # A foreign origin is refused, the challenge spent with it.
    options = auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user))
    assert refused(user, device.create(options, origin="https://evil.example"))["statusCode"] == 400
    settings.WEBAUTHN_CHALLENGE_TTL_SECONDS = 1
    options = auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user))
    time.sleep(1.5)
    assert refused(user, device.create(options))["statusCode"] == 400

    assert not Passkey.objects.exists()
    reasons = SecurityEvent.objects.filter(kind="passkey_registration", outcome="failure").values_list("reason")
    assert sorted(r for (r,) in reasons) == ["challenge", "challenge", "challenge", "invalid_attestation"]


def test_a_passwordless_login_with_a_discoverable_passkey_opens_a_session_with_amr_hwk(auth: AuthApi) -> None:
    user = UserFactory()
    device, passkey = register(auth, user)

    options = login_options(auth)
    assert options["allowCredentials"] == []
    assert options["rpId"] == "localhost"
    reply = login(auth, device.get(options))

    assert set(reply) == {"accessToken", "refreshToken", "refreshExpiresAt", "sessionId"}
    _, claims = auth.decode_access(reply["accessToken"])
    assert (claims["sub"], claims["amr"]) == (str(user.id), ["hwk"])
    stored = Passkey.objects.get(pk=passkey["id"])
    assert stored.sign_count == 1 and stored.last_used_at is not None
    event = SecurityEvent.objects.get(user_id=user.id, kind="login", outcome="success")
    assert event.detail == {"sid": reply["sessionId"], "method": "passkey", "amr": ["hwk"]}


def test_passwordless_needs_user_verification_and_a_second_factor_does_not(auth: AuthApi) -> None:
    user = UserFactory()
    device, _ = register(auth, user)

    assert login_error(auth, device.get(login_options(auth), uv=False)) == INVALID
    token = mfa_token(user)
    reply = login(auth, device.get(login_options(auth, user.email), uv=False), mfa_token=token)

    _, claims = auth.decode_access(reply["accessToken"])
    assert claims["amr"] == ["pwd", "hwk"]
    assert failures(user) == ["user_not_verified"]
    # The mfaToken was single use.
    assert login_error(auth, device.get(login_options(auth), uv=False), mfa_token=token) == INVALID_MFA


def test_a_password_alone_no_longer_logs_in_once_a_passkey_is_registered(auth: AuthApi) -> None:
    user = UserFactory()
    device, _ = register(auth, user)

    challenge = auth(subjects.AUTH_LOGIN, {"slug": user.email, "password": PASSWORD}, client=CLIENT)
    assert set(challenge) == {"mfaRequired", "mfaToken", "methods"}
    assert challenge["methods"] == ["passkey"]
    status = auth(subjects.AUTH_MFA_STATUS, {}, agent=agent_of(user))
    assert [passkey["name"] for passkey in status["passkeys"]] == ["Laptop"]

    reply = login(auth, device.get(login_options(auth, user.email), uv=False), mfa_token=challenge["mfaToken"])
    assert auth.decode_access(reply["accessToken"])[1]["amr"] == ["pwd", "hwk"]
    # The refreshed token says how its session's login was made.
    refreshed = auth(subjects.AUTH_REVALIDATE, {"refreshToken": reply["refreshToken"]}, client=CLIENT)
    assert auth.decode_access(refreshed["accessToken"])[1]["amr"] == ["pwd", "hwk"]


def test_a_second_factor_is_refused_with_another_users_mfa_token_and_costs_that_token_an_attempt(
    auth: AuthApi,
) -> None:
    user, other = UserFactory(), UserFactory()
    device, _ = register(auth, user)
    other_device, _ = register(auth, other)
    token = mfa_token(other)

    assert login_error(auth, device.get(login_options(auth)), mfa_token=token) == INVALID_MFA
    assert failures(other) == ["bad_code"]
    # The token lives on with one attempt fewer, for its own account's passkey.
    reply = login(auth, other_device.get(login_options(auth)), mfa_token=token)
    assert auth.decode_access(reply["accessToken"])[1]["amr"] == ["pwd", "hwk"]


def test_a_second_factor_from_another_client_or_for_an_account_without_passkeys_is_refused(auth: AuthApi) -> None:
    user = UserFactory()
    device, _ = register(auth, user)

    stolen = mfa_token(user)
    data = {"credential": device.get(login_options(auth)), "mfaToken": stolen}
    other_client = {**CLIENT, "user_agent": "someone-else"}
    assert auth.error(subjects.AUTH_PASSKEY_LOGIN_VERIFY, data, client=other_client).to_body() == INVALID_MFA
    assert login_error(auth, device.get(login_options(auth)), mfa_token=stolen) == INVALID_MFA
    totp_only = mfa_token(user, methods=("totp",))
    refused = login_error(auth, device.get(login_options(auth)), mfa_token=totp_only)
    assert (refused["statusCode"], refused["message"]) == (400, "This account cannot use passkey here; methods: totp")


def test_a_signature_counter_that_does_not_grow_is_refused_unless_both_are_zero(auth: AuthApi) -> None:
    user = UserFactory()
    device, passkey = register(auth, user)

    login(auth, device.get(login_options(auth), count=5))
    assert login_error(auth, device.get(login_options(auth), count=5)) == INVALID
    assert login_error(auth, device.get(login_options(auth), count=3)) == INVALID
    assert Passkey.objects.get(pk=passkey["id"]).sign_count == 5
    assert failures(user) == ["sign_count", "sign_count"]
    assert [m.subject for m in mail.outbox[-2:]] == ["A passkey of your account was refused"] * 2

    counterless, _ = register(auth, user, SoftAuthenticator(), name="Counterless")
    login(auth, counterless.get(login_options(auth), count=0))
    login(auth, counterless.get(login_options(auth), count=0))


def test_a_login_challenge_is_single_use_and_bound_to_the_origin(auth: AuthApi) -> None:
    user = UserFactory()
    device, _ = register(auth, user)

    assertion = device.get(login_options(auth))
    login(auth, assertion)
    assert login_error(auth, assertion) == INVALID
    assert login_error(auth, device.get(login_options(auth), origin="https://evil.example")) == INVALID
    assert failures(user) == ["challenge", "invalid_assertion"]


def test_login_options_never_tell_whether_an_account_exists(auth: AuthApi) -> None:
    with_passkey, without = UserFactory(), UserFactory()
    device, _ = register(auth, with_passkey)
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"

    real = login_options(auth, with_passkey.email)["allowCredentials"]
    decoy = login_options(auth, unknown)["allowCredentials"]
    no_passkey = login_options(auth, without.username)["allowCredentials"]

    assert [entry["id"] for entry in real] == [b64url(device.credential_id)]
    for entries in (decoy, no_passkey):
        assert len(entries) == 1 and entries[0]["type"] == "public-key" and entries[0]["transports"]
    assert login_options(auth, unknown.upper())["allowCredentials"] == decoy
    assert decoy != no_passkey


def test_an_unknown_passkey_an_inactive_and_an_unverified_user_get_the_password_logins_answers(
    auth: AuthApi,
) -> None:
    inactive, unverified = UserFactory(), UserFactory(is_verified=False)
    inactive_device, _ = register(auth, inactive)
    unverified_device, _ = register(auth, unverified)
    User.objects.filter(pk=inactive.pk).update(is_active=False)

    assert login_error(auth, SoftAuthenticator().get(login_options(auth))) == INVALID
    assert login_error(auth, inactive_device.get(login_options(auth))) == INVALID
    unverified_reply = login_error(auth, unverified_device.get(login_options(auth)))
    assert (unverified_reply["statusCode"], unverified_reply["message"]) == (
        400,
        "Account not verified: enter the code sent to your e-mail address",
    )


def test_rename_and_remove_act_on_the_callers_own_passkeys_only(auth: AuthApi) -> None:
    user, other = UserFactory(), UserFactory()
    device, passkey = register(auth, user)
    mine = agent_of(user)

    renamed = auth(subjects.AUTH_PASSKEY_RENAME, {"id": passkey["id"], "name": "Phone"}, agent=mine)
    assert renamed == {**passkey, "name": "Phone"}
    for subject, data in (
        (subjects.AUTH_PASSKEY_RENAME, {"id": passkey["id"], "name": "Mine now"}),
        (subjects.AUTH_PASSKEY_DELETE, {"id": passkey["id"]}),
    ):
        assert auth.error(subject, data, agent=agent_of(other)).to_body()["statusCode"] == 404
    assert auth.error(subjects.AUTH_PASSKEY_RENAME, {"id": passkey["id"], "name": " "}, agent=mine).status == 400
    assert auth(subjects.AUTH_PASSKEY_DELETE, {"id": passkey["id"]}, agent=mine) is None

    assert auth(subjects.AUTH_PASSKEY_LIST, {}, agent=mine) == []
    assert mail.outbox[-1].subject == "A passkey was removed from your account"
    kinds = SecurityEvent.objects.filter(user_id=user.id).values_list("kind", flat=True)
    assert {"passkey_added", "passkey_renamed", "passkey_removed"} <= set(kinds)
    assert login_error(auth, device.get(login_options(auth))) == INVALID


@pytest.mark.parametrize(
    ("data", "field"),
    [({"credential": "x", "name": "Key"}, "credential"), ({"credential": {}, "name": "Key", "more": 1}, "more")],
)
def test_the_register_subject_refuses_malformed_payloads(auth: AuthApi, data: dict[str, Any], field: str) -> None:
    user = UserFactory()
    error = auth.error(subjects.AUTH_PASSKEY_REGISTER_VERIFY, data, agent=agent_of(user))
    assert error.status == 400 and field in (error.fields or {})


def test_only_known_transports_are_kept(auth: AuthApi) -> None:
    user = UserFactory()
    options = auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user))
    credential = SoftAuthenticator().create(options)
    credential["response"]["transports"] = ["usb", {"x": 1}, 5, "bogus", "internal", "usb"]

    auth(subjects.AUTH_PASSKEY_REGISTER_VERIFY, {"credential": credential, "name": "Key"}, agent=agent_of(user))

    assert Passkey.objects.get(user=user).transports == ["internal", "usb"]


BROKEN_ASSERTIONS: list[tuple[str, Any]] = [
    ("clientDataJSON", "bm90IGpzb24"),
    ("clientDataJSON", "!!"),
    ("authenticatorData", "AAAA"),
    ("authenticatorData", 7),
    ("signature", "AAAA"),
    ("signature", None),
    ("userHandle", "!!"),
    ("userHandle", ["x"]),
]
BROKEN_ATTESTATIONS: list[tuple[str, Any]] = [
    ("clientDataJSON", "bm90IGpzb24"),
    ("attestationObject", "oWNmbXQ"),
    ("attestationObject", "AAAA"),
    ("attestationObject", "!!"),
    ("attestationObject", {"fmt": "none"}),
]


@pytest.mark.parametrize(("field", "value"), BROKEN_ASSERTIONS)
def test_a_malformed_assertion_is_a_401_never_a_server_error(auth: AuthApi, field: str, value: Any) -> None:
    user = UserFactory()
    device, _ = register(auth, user)
    assertion = device.get(login_options(auth))
    assertion["response"][field] = value

    assert login_error(auth, assertion) == INVALID


@pytest.mark.parametrize(("field", "value"), BROKEN_ATTESTATIONS)
def test_a_malformed_attestation_is_a_400_never_a_server_error(auth: AuthApi, field: str, value: Any) -> None:
    user = UserFactory()
    attestation = SoftAuthenticator().create(auth(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, {}, agent=agent_of(user)))
    attestation["response"][field] = value

    data = {"credential": attestation, "name": "Key"}
    refused = auth.error(subjects.AUTH_PASSKEY_REGISTER_VERIFY, data, agent=agent_of(user))

    assert refused.status == 400
    assert not Passkey.objects.exists()
