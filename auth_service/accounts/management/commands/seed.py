"""`manage_auth.py seed`: roles, a signing key and the four test accounts; idempotent and never destructive."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from auth_service.accounts.services.seed import seed


class Command(BaseCommand):
    help = "Create the roles and the test accounts that are missing (never changes or deletes existing data)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = seed()
        if not settings.SEED_PASSWORD:
            self.stdout.write(
                "Accounts not seeded: no SEED_PASSWORD (or SEED_PASSWORD_FILE) is set. "
                "Create the first account with `manage_auth.py createsuperuser`, or give an initial password."
            )
        elif created:
            self.stdout.write(self.style.SUCCESS(f"Seeded: {', '.join(created)}"))
        else:
            self.stdout.write("Nothing to seed: every account already exists.")
