"""Pure policies without a database: password and profile rules, and every row of the permission matrix."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from auth_service.accounts.policies import (
    EMAIL_MESSAGE,
    NAME_MESSAGE,
    ROLES_MESSAGE,
    STRENGTH_RULE_MESSAGE,
    USERNAME_MESSAGE,
    MaximumLengthValidator,
    OriginalPasswordRuleValidator,
    can_write_user,
    profile_errors,
    sorted_roles,
)
from common.contracts.errors import BadRequest, Forbidden


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("Kx9!mQ2#vLp7", True),
        ("Password123!", True),
        ("Kx9!mQ2#v", False),  # 9 characters
        ("kx9!mq2#vlp7", False),  # no upper case
        ("KX9!MQ2#VLP7", False),  # no lower case
        ("Kxa!mQb#vLpc", False),  # no digit
        ("Kx9amQ2bvLp7", False),  # no symbol
        ("Kx9 mQ2 vLp7", False),  # a space is not a symbol
    ],
)
def test_original_password_rule(password: str, ok: bool) -> None:
    validator = OriginalPasswordRuleValidator()
    if ok:
        validator.validate(password)
        return
    with pytest.raises(ValidationError) as info:
        validator.validate(password)
    assert info.value.messages == [STRENGTH_RULE_MESSAGE]


def test_maximum_length_is_128() -> None:
    validator = MaximumLengthValidator()
    validator.validate("Aa1!" * 32)
    with pytest.raises(ValidationError) as info:
        validator.validate("Aa1!" * 32 + "x")
    assert info.value.messages == ["Password must be at most 128 characters long"]


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"name": "Jane Doe", "username": "jane2024", "email": "jane@example.com", "roles": ["user"]}, {}),
        ({"name": "José Ñúñez"}, {}),
        ({"name": "Joe"}, {"name": [NAME_MESSAGE]}),
        ({"name": "J" * 41}, {"name": [NAME_MESSAGE]}),
        ({"name": "Jane D0e"}, {"name": [NAME_MESSAGE]}),
        ({"name": "    "}, {"name": [NAME_MESSAGE]}),
        ({"username": "abc"}, {"username": [USERNAME_MESSAGE]}),
        ({"username": "a" * 41}, {"username": [USERNAME_MESSAGE]}),
        ({"username": "jane_doe"}, {"username": [USERNAME_MESSAGE]}),
        ({"username": "\u0430dmin"}, {"username": [USERNAME_MESSAGE]}),  # Cyrillic look-alike
        ({"email": "not-an-email"}, {"email": [EMAIL_MESSAGE]}),
        ({"email": "a" * 245 + "@example.com"}, {"email": [EMAIL_MESSAGE]}),
        ({"roles": []}, {"roles": [ROLES_MESSAGE]}),
        ({"roles": ["root"]}, {"roles": [ROLES_MESSAGE]}),
    ],
)
def test_profile_rules(fields: dict[str, object], errors: dict[str, list[str]]) -> None:
    assert profile_errors(**fields) == errors  # type: ignore[arg-type]


def test_sorted_roles_is_unique_and_lowest_first() -> None:
    assert sorted_roles(["sys_admin", "user", "user", "guest"]) == ["guest", "user", "sys_admin"]


G, U, A, S = ["guest"], ["user"], ["admin"], ["sys_admin"]
SELF = "self"
OK = None
FORBIDDEN = Forbidden
BAD = BadRequest

# (agent roles, agent active, target: SELF | roles of another user | None for create, change, new roles, outcome)
MATRIX = [
    # An inactive agent can do nothing, whatever its roles.
    pytest.param(S, False, U, {"name"}, None, FORBIDDEN, id="inactive-sys_admin"),
    pytest.param(U, False, SELF, {"name"}, None, FORBIDDEN, id="inactive-self"),
    pytest.param(A, False, None, {"create"}, U, FORBIDDEN, id="inactive-admin-create"),
    # sys_admin: anything to anyone...
    pytest.param(S, True, U, {"name", "username", "email", "password"}, None, OK, id="sys-profile-of-user"),
    pytest.param(S, True, U, {"roles"}, S, OK, id="sys-grants-sys_admin"),
    pytest.param(S, True, A, {"roles"}, U, OK, id="sys-demotes-admin"),
    pytest.param(S, True, S, {"roles"}, A, OK, id="sys-demotes-other-sys_admin"),
    pytest.param(S, True, S, {"deactivate"}, None, OK, id="sys-deactivates-other-sys_admin"),
    pytest.param(S, True, A, {"reactivate"}, None, OK, id="sys-reactivates-admin"),
    pytest.param(S, True, U, {"delete"}, None, OK, id="sys-deletes-user"),
    pytest.param(S, True, A, {"deny"}, None, OK, id="sys-denies-admin"),
    pytest.param(S, True, None, {"create"}, S, OK, id="sys-creates-sys_admin"),
    # ...except deny, deactivate or delete itself.
    pytest.param(S, True, SELF, {"deny"}, None, BAD, id="sys-denies-self"),
    pytest.param(S, True, SELF, {"deactivate"}, None, BAD, id="sys-deactivates-self"),
    pytest.param(S, True, SELF, {"delete"}, None, BAD, id="sys-deletes-self"),
    pytest.param(S, True, SELF, {"name", "password"}, None, OK, id="sys-updates-self"),
    pytest.param(S, True, SELF, {"roles"}, A, OK, id="sys-lowers-own-roles"),
    # admin: users who are neither admin nor sys_admin, never granting sys_admin.
    pytest.param(A, True, U, {"name", "username", "email", "password"}, None, OK, id="admin-profile-of-user"),
    pytest.param(A, True, G, {"roles"}, U, OK, id="admin-promotes-guest"),
    pytest.param(A, True, U, {"roles"}, A, OK, id="admin-grants-admin"),
    pytest.param(A, True, U, {"roles"}, S, FORBIDDEN, id="admin-grants-sys_admin"),
    pytest.param(A, True, U, {"roles"}, ["user", "sys_admin"], FORBIDDEN, id="admin-adds-sys_admin"),
    pytest.param(A, True, U, {"deactivate"}, None, OK, id="admin-deactivates-user"),
    pytest.param(A, True, G, {"reactivate"}, None, OK, id="admin-reactivates-guest"),
    pytest.param(A, True, U, {"delete"}, None, FORBIDDEN, id="admin-deletes-user"),
    pytest.param(A, True, U, {"deny"}, None, FORBIDDEN, id="admin-denies-user"),
    pytest.param(A, True, A, {"name"}, None, FORBIDDEN, id="admin-on-other-admin"),
    pytest.param(A, True, S, {"roles"}, U, FORBIDDEN, id="admin-demotes-sys_admin"),
    pytest.param(A, True, S, {"deactivate"}, None, FORBIDDEN, id="admin-deactivates-sys_admin"),
    pytest.param(A, True, ["user", "admin"], {"email"}, None, FORBIDDEN, id="admin-on-user-with-admin-role"),
    pytest.param(A, True, None, {"create"}, U, OK, id="admin-creates-user"),
    pytest.param(A, True, None, {"create"}, A, OK, id="admin-creates-admin"),
    pytest.param(A, True, None, {"create"}, S, FORBIDDEN, id="admin-creates-sys_admin"),
    pytest.param(["user", "admin"], True, U, {"name"}, None, OK, id="highest-role-counts"),
    # Anyone but a guest updates their own name, username, email and password...
    pytest.param(A, True, SELF, {"name", "username", "email", "password"}, None, OK, id="admin-updates-self"),
    pytest.param(U, True, SELF, {"name", "username", "email", "password"}, None, OK, id="user-updates-self"),
    pytest.param(U, True, SELF, {"deactivate"}, None, OK, id="user-deactivates-self"),
    pytest.param(A, True, SELF, {"deactivate"}, None, OK, id="admin-deactivates-self"),
    # ...but nobody raises (or otherwise changes, below sys_admin) their own roles.
    pytest.param(U, True, SELF, {"roles"}, A, FORBIDDEN, id="user-raises-own-roles"),
    pytest.param(U, True, SELF, {"roles"}, G, FORBIDDEN, id="user-changes-own-roles"),
    pytest.param(A, True, SELF, {"roles"}, S, FORBIDDEN, id="admin-raises-own-roles"),
    pytest.param(A, True, SELF, {"roles"}, U, FORBIDDEN, id="admin-changes-own-roles"),
    pytest.param(G, True, SELF, {"roles"}, U, FORBIDDEN, id="guest-raises-own-roles"),
    pytest.param(U, True, SELF, {"delete"}, None, FORBIDDEN, id="user-deletes-self"),
    pytest.param(A, True, SELF, {"deny"}, None, FORBIDDEN, id="admin-denies-self"),
    # A user acts on nobody else; a guest only reads.
    pytest.param(U, True, U, {"name"}, None, FORBIDDEN, id="user-on-other-user"),
    pytest.param(U, True, G, {"deactivate"}, None, FORBIDDEN, id="user-deactivates-guest"),
    pytest.param(U, True, None, {"create"}, U, FORBIDDEN, id="user-creates"),
    pytest.param(U, True, U, {"deny"}, None, FORBIDDEN, id="user-denies"),
    pytest.param(G, True, SELF, {"name"}, None, FORBIDDEN, id="guest-updates-own-name"),
    pytest.param(G, True, SELF, {"password"}, None, FORBIDDEN, id="guest-updates-own-password"),
    pytest.param(G, True, SELF, {"deactivate"}, None, FORBIDDEN, id="guest-deactivates-self"),
    pytest.param(G, True, U, {"name"}, None, FORBIDDEN, id="guest-on-user"),
    pytest.param(G, True, None, {"create"}, G, FORBIDDEN, id="guest-creates"),
]


@pytest.mark.parametrize(("agent_roles", "agent_active", "target", "change", "new_roles", "outcome"), MATRIX)
def test_permission_matrix(
    agent_roles: list[str],
    agent_active: bool,
    target: str | list[str] | None,
    change: set[str],
    new_roles: list[str] | None,
    outcome: type[Exception] | None,
) -> None:
    agent_id = "agent-id"
    if target == SELF:
        target_id, target_roles = agent_id, agent_roles
    elif target is None:
        target_id, target_roles = None, []
    else:
        target_id, target_roles = "target-id", list(target)

    def decide() -> None:
        can_write_user(
            agent_roles=agent_roles,
            agent_id=agent_id,
            agent_active=agent_active,
            target_id=target_id,
            target_roles=target_roles,
            change=change,
            new_roles=new_roles,
        )

    if outcome is None:
        decide()
    else:
        with pytest.raises(outcome) as info:
            decide()
        assert type(info.value) is outcome
        assert info.value.status == (403 if outcome is Forbidden else 400)
