"""Development data: the roles and the four test accounts, never destructive."""

from __future__ import annotations

import logging

from django.conf import settings

from auth_service.accounts import selectors
from auth_service.accounts.models import Role
from auth_service.accounts.services.signing_keys import signing_key_ensure_active
from auth_service.accounts.services.users import user_provision
from common.contracts.errors import Conflict
from common.contracts.roles import ADMIN, DESCRIPTIONS, GUEST, RANK, SYS_ADMIN, USER

log = logging.getLogger(__name__)

SEED_ACCOUNTS = (
    ("sys-admin@test.com", "sysadmin", "System Admin", SYS_ADMIN),
    ("admin@test.com", "adminuser", "Admin User", ADMIN),
    ("user@test.com", "basicuser", "Basic User", USER),
    ("guest@test.com", "guestuser", "Guest User", GUEST),
)


def roles_ensure() -> int:
    """Insert the four roles if missing; existing rows are left as they are."""
    created = 0
    for role, rank in RANK.items():
        _, was_created = Role.objects.get_or_create(
            name=role, defaults={"rank": rank, "description": DESCRIPTIONS[role]}
        )
        created += int(was_created)
    return created


def seed() -> list[str]:
    """Idempotent and never destructive: roles, a signing key and the four test accounts when they are missing.

    The accounts only with an initial password (SEED_PASSWORD): production settings have no default one.
    """
    roles_ensure()
    if selectors.signing_key_active() is None:
        signing_key_ensure_active()
    created: list[str] = []
    if not settings.SEED_PASSWORD:
        log.warning("seed accounts not created: no SEED_PASSWORD")
        return created
    for email, username, name, role in SEED_ACCOUNTS:
        if selectors.email_taken(email):
            continue
        if selectors.username_taken(username):
            log.warning("seed account skipped: username taken by another account", extra={"username": username})
            continue
        try:
            user_provision(
                email=email,
                username=username,
                name=name,
                password=settings.SEED_PASSWORD,
                roles=[role],
                is_verified=True,
            )
        except Conflict:
            continue  # a concurrent seed created it
        created.append(email)
    if created:
        log.info("seeded accounts", extra={"seeded": created})
    return created
