"""Roles, defined once: their order (rank), what each may do, and the role sets the gateway and the services check."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

GUEST: Final = "guest"
USER: Final = "user"
ADMIN: Final = "admin"
SYS_ADMIN: Final = "sys_admin"

# Lowest first: a role's rank is its position (guest < user < admin < sys_admin).
ROLES: Final = (GUEST, USER, ADMIN, SYS_ADMIN)
RANK: Final = MappingProxyType({role: rank for rank, role in enumerate(ROLES)})
DESCRIPTIONS: Final = MappingProxyType(
    {
        GUEST: "Read-only access",
        USER: "Manages their own account",
        ADMIN: "Manages users who are neither admin nor sys_admin",
        SYS_ADMIN: "Manages everyone and everything",
    }
)

# Staff: the roles of the admin consoles and of the gateway's admin routes.
ADMINS: Final = frozenset({ADMIN, SYS_ADMIN})
SYS_ADMINS: Final = frozenset({SYS_ADMIN})
# Every role above guest: the ones that may write (guests read only).
NOT_GUEST: Final = frozenset(role for role in ROLES if RANK[role] > RANK[GUEST])
