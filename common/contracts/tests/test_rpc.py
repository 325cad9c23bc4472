"""Decoding with a contract: one 400 vocabulary naming the field, and a publisher that cannot send what the
consumer would refuse (pure: no servers)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from common.contracts import auth, main, passkeys
from common.contracts.errors import ValidationFailed
from common.contracts.events import UserDeleted, UserSnapshot, payload_type
from common.contracts.rpc import decode
from common.contracts.users import NAME_PATTERN, USERNAME_PATTERN


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"slug": "ada"}, "password", "password is required"),
        ({"slug": "ada", "password": "x", "remember": True}, "remember", "property remember should not exist"),
        ({"slug": 7, "password": "x"}, "slug", "slug must be a string"),
        ({"slug": "a" * 4097, "password": "x"}, "slug", "slug must be a string of length <= 4096"),
        ("slug=ada", "data", "data must be an object"),
    ],
)
def test_a_request_that_does_not_fit_is_a_400_naming_the_field(data: Any, field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        auth.LOGIN.decode(data)

    assert info.value.status == 400
    assert info.value.message == [message]
    assert info.value.fields == {field: [message]}


def test_nested_fields_are_named_by_their_path() -> None:
    with pytest.raises(ValidationFailed) as info:
        auth.USER_UPDATE.decode({"id": str(uuid.uuid4()), "changes": {"roles": ["user", 3]}})

    assert info.value.fields == {"changes.roles": ["changes.roles must be a string"]}


def test_wire_names_are_camel_case_and_absent_changes_stay_absent() -> None:
    update = auth.USER_UPDATE.decode({"id": str(uuid.uuid4()), "changes": {"oldPassword": "a", "password": "b"}})

    assert update.changes.old_password == "a"
    assert update.changes.present() == {"oldPassword": "a", "password": "b"}
    assert auth.USER_UPDATE.encode(update)["changes"] == {"password": "b", "oldPassword": "a"}


def test_the_publisher_cannot_send_what_the_consumer_refuses() -> None:
    assert main.USER_FIND_ALL.encode({"limit": 5}) == {"limit": 5, "offset": 0, "active": None, "verified": None}
    with pytest.raises(ValidationFailed) as info:
        main.USER_FIND_ALL.encode({"limit": 500})
    assert info.value.fields == {"limit": ["limit must be an integer <= 100"]}


def test_event_payloads_have_one_type_per_event() -> None:
    user_id = uuid.uuid4()
    snapshot = {
        "id": str(user_id),
        "name": "Ada Lovelace",
        "username": "ada",
        "email": "ada@example.com",
        "roles": ["user"],
        "verifiedAccount": True,
        "active": True,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "version": 3,
    }

    assert decode(snapshot, payload_type("auth.user.updated")) == UserSnapshot(
        id=user_id,
        name="Ada Lovelace",
        username="ada",
        email="ada@example.com",
        roles=["user"],
        verified_account=True,
        active=True,
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
        version=3,
    )
    assert decode({"id": str(user_id), "version": 4}, payload_type("auth.user.deleted")) == UserDeleted(
        id=user_id, version=4
    )
    with pytest.raises(ValidationFailed):  # a snapshot never carries more than the public user
        decode({**snapshot, "password": "x"}, payload_type("auth.user.updated"))
    with pytest.raises(KeyError):
        payload_type("auth.user.exploded")


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Jane Doe", True),
        ("Zoë Ångström", True),
        ("Jane  Doe", True),
        (" Jane", False),
        ("Jane1", False),
        ("J_ne", False),
    ],
)
def test_the_name_rule(name: str, valid: bool) -> None:
    assert bool(NAME_PATTERN.fullmatch(name)) is valid


@pytest.mark.parametrize(("username", "valid"), [("jane42", True), ("jane_42", False), ("j\u0430ne", False)])
def test_the_username_rule_is_ascii(username: str, valid: bool) -> None:
    assert bool(USERNAME_PATTERN.fullmatch(username)) is valid


def test_a_credential_holding_an_integer_no_json_peer_can_hold_is_a_400() -> None:
    """The browser's credential is passed on as JSON: an integer beyond 64 bits (which the services' JSON cannot
    carry) is refused where it arrives, naming the credential."""
    with pytest.raises(ValidationFailed) as info:
        passkeys.REGISTER_VERIFY.decode({"credential": {"response": {"n": [2**70]}}, "name": "Laptop"})

    assert info.value.fields == {"credential": ["credential must hold no integer beyond 64 bits"]}
    assert passkeys.LOGIN_VERIFY.decode({"credential": {"n": 2**63 - 1}}).credential == {"n": 2**63 - 1}
