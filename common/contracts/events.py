"""Identity event types published by the auth service on the USERS stream."""

from __future__ import annotations

import uuid

from common.contracts.roles import ROLES as ROLES
from common.contracts.rpc import Message
from common.contracts.users import UserPublic, Version

USER_REGISTERED = "auth.user.registered"
USER_VERIFIED = "auth.user.verified"
USER_UPDATED = "auth.user.updated"
USER_ROLES_CHANGED = "auth.user.roles_changed"
USER_DEACTIVATED = "auth.user.deactivated"
USER_REACTIVATED = "auth.user.reactivated"
USER_DELETED = "auth.user.deleted"
USER_PASSWORD_CHANGED = "auth.user.password_changed"  # noqa: S105 - an event name

ALL_USER_EVENTS = (
    USER_REGISTERED,
    USER_VERIFIED,
    USER_UPDATED,
    USER_ROLES_CHANGED,
    USER_DEACTIVATED,
    USER_REACTIVATED,
    USER_DELETED,
    USER_PASSWORD_CHANGED,
)


class UserSnapshot(UserPublic):
    """The payload of every user event but `deleted`: the public user plus its per-user version, so applying the
    newest one is always right. Never a password, hash, code or token."""

    version: Version


class UserDeleted(Message):
    """The payload of `auth.user.deleted`."""

    id: uuid.UUID
    version: Version


def payload_type(event_type: str) -> type[UserSnapshot] | type[UserDeleted]:
    """The payload type of an event (KeyError for a type that is not an identity event)."""
    if event_type not in ALL_USER_EVENTS:
        raise KeyError(event_type)
    return UserDeleted if event_type == USER_DELETED else UserSnapshot
