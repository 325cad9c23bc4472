"""Identity event types published by the auth service on the USERS stream."""

from __future__ import annotations

from common.contracts.roles import ROLES as ROLES

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

# Every user event's payload is a snapshot of the public user state plus a per-user version:
#   {"id", "name", "username", "email", "roles", "verifiedAccount", "active",
#    "createdAt", "updatedAt", "version"}
# A deleted event carries {"id", "version"}. Never a password, hash, code or token.
SNAPSHOT_FIELDS = (
    "id",
    "name",
    "username",
    "email",
    "roles",
    "verifiedAccount",
    "active",
    "createdAt",
    "updatedAt",
    "version",
)
