"""`manage_auth.py seed`: roles, a signing key and the four test accounts; idempotent and never destructive."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from auth_service.accounts.services.seed import seed


class Command(BaseCommand):
    help = "Create the roles and the test accounts that are missing (never changes or deletes existing data)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = seed()
        if created:
            self.stdout.write(self.style.SUCCESS(f"Seeded: {', '.join(created)}"))
        else:
            self.stdout.write("Nothing to seed: every account already exists.")
