"""Pure identity rules: password and profile policies and the user-write permission matrix (no database)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from common.contracts.errors import BadRequest, Forbidden
from common.contracts.roles import ADMIN, ADMINS, GUEST, RANK, ROLES, SYS_ADMIN
from common.contracts.users import NAME_LENGTH, NAME_PATTERN, USERNAME_LENGTH, USERNAME_PATTERN

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 128
# The original's text, word for word: SPEC §2 keeps it so that existing clients can match it.
STRENGTH_RULE_MESSAGE = (
    "The password must have an uppercase letter, a lowercase letter, a number, a symbol and be 10 characters long"
)
NAME_MESSAGE = "Name must be 4 to 40 characters long and contain only letters and spaces"
USERNAME_MESSAGE = "Username must be 4 to 40 characters long and contain only letters and numbers"
EMAIL_MESSAGE = "Email must be a valid e-mail address of at most 254 characters"
ROLES_MESSAGE = f"Roles must be a non-empty list of: {', '.join(ROLES)}"

_email_validator = EmailValidator()

# Fields a user write may touch, and the actions that are not field changes.
PROFILE_FIELDS = frozenset({"name", "username", "email", "password"})
FIELD_ROLES = "roles"
ACTION_CREATE = "create"
ACTION_DEACTIVATE = "deactivate"
ACTION_REACTIVATE = "reactivate"
ACTION_DELETE = "delete"
ACTION_DENY = "deny"
_SELF_FORBIDDEN_TO_SYS_ADMIN = {
    ACTION_DENY: "You cannot deny access to yourself",
    ACTION_DEACTIVATE: "You cannot deactivate yourself",
    ACTION_DELETE: "You cannot delete yourself",
}


class OriginalPasswordRuleValidator:
    """The original application's rule: at least 10 characters with upper, lower, digit and symbol."""

    def validate(self, password: str, user: Any = None) -> None:
        if not password_meets_rule(password):
            raise ValidationError(STRENGTH_RULE_MESSAGE, code="password_too_weak")

    def get_help_text(self) -> str:
        return STRENGTH_RULE_MESSAGE


class MaximumLengthValidator:
    """Caps the length: hashing cost is bounded anyway, but nobody needs more and it bounds request size."""

    def __init__(self, max_length: int = PASSWORD_MAX_LENGTH) -> None:
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                f"Password must be at most {self.max_length} characters long", code="password_too_long"
            )

    def get_help_text(self) -> str:
        return f"Your password must contain at most {self.max_length} characters."


def password_meets_rule(password: str) -> bool:
    return (
        len(password) >= PASSWORD_MIN_LENGTH
        and any(c.isupper() for c in password)
        and any(c.islower() for c in password)
        and any(c.isdigit() for c in password)
        and any(not c.isalnum() and not c.isspace() for c in password)
    )


def normalize_email(value: str) -> str:
    return value.strip().lower()


def name_errors(value: str) -> list[str]:
    low, high = NAME_LENGTH
    return [] if low <= len(value) <= high and NAME_PATTERN.fullmatch(value) else [NAME_MESSAGE]


def username_errors(value: str) -> list[str]:
    low, high = USERNAME_LENGTH
    return [] if low <= len(value) <= high and USERNAME_PATTERN.fullmatch(value) else [USERNAME_MESSAGE]


def email_errors(value: str) -> list[str]:
    if len(value) > 254:
        return [EMAIL_MESSAGE]
    try:
        _email_validator(value)
    except ValidationError:
        return [EMAIL_MESSAGE]
    return []


def roles_errors(value: Collection[str]) -> list[str]:
    if not value or any(role not in RANK for role in value):
        return [ROLES_MESSAGE]
    return []


def profile_errors(
    *,
    name: str | None = None,
    username: str | None = None,
    email: str | None = None,
    roles: Collection[str] | None = None,
) -> dict[str, list[str]]:
    """Field errors of the given (already normalised) values; fields left as None are not checked."""
    errors: dict[str, list[str]] = {}
    checks = (
        ("name", name, name_errors),
        ("username", username, username_errors),
        ("email", email, email_errors),
    )
    for field, value, check in checks:
        if value is not None and (messages := check(value)):
            errors[field] = messages
    if roles is not None and (messages := roles_errors(roles)):
        errors["roles"] = messages
    return errors


def sorted_roles(roles: Iterable[str]) -> list[str]:
    """Unique roles, lowest first: one canonical form, so equal sets compare equal."""
    return sorted(set(roles), key=RANK.__getitem__)


def top_rank(roles: Iterable[str]) -> int:
    return max((RANK[r] for r in roles if r in RANK), default=-1)


def can_write_user(
    *,
    agent_roles: Collection[str],
    agent_id: str,
    agent_active: bool,
    target_id: str | None,
    target_roles: Collection[str],
    change: Collection[str],
    new_roles: Collection[str] | None = None,
) -> None:
    """Raise Forbidden (403) or BadRequest (400) when the agent may not make `change` to the target (SPEC §2).

    `change` holds field names (name, username, email, password, roles) or one action (create, deactivate,
    reactivate, delete, deny); `target_id` is None for create. Returns None when the write is allowed.
    """
    if not agent_active:
        raise Forbidden("Your account is inactive")
    changes = set(change)
    is_self = target_id is not None and agent_id == target_id
    if is_self and new_roles is not None and top_rank(new_roles) > top_rank(agent_roles):
        raise Forbidden("You cannot raise your own roles")
    if SYS_ADMIN in agent_roles:
        if is_self:
            for action, message in _SELF_FORBIDDEN_TO_SYS_ADMIN.items():
                if action in changes:
                    raise BadRequest(message)
        return
    if top_rank(agent_roles) <= RANK[GUEST]:
        raise Forbidden("Guests have read-only access")
    if changes & {ACTION_DENY, ACTION_DELETE}:
        raise Forbidden("Only a sys_admin can do this")
    if is_self:
        if changes <= PROFILE_FIELDS | {ACTION_DEACTIVATE}:
            return
        raise Forbidden("You cannot change your own roles")
    if ADMIN in agent_roles:
        if ADMINS & set(target_roles):
            raise Forbidden("Admins can only manage users who are neither admin nor sys_admin")
        if new_roles is not None and SYS_ADMIN in new_roles:
            raise Forbidden("Admins cannot grant sys_admin")
        return
    raise Forbidden("You can only change your own account")
