"""`manage_auth.py purge_expired`: delete spent or expired codes and tokens, and long-retired signing keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from auth_service.accounts.services.housekeeping import expired_records_purge


class Command(BaseCommand):
    help = "Delete expired or used verification codes and recovery tokens, and signing keys retired long ago."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = expired_records_purge()
        self.stdout.write(", ".join(f"{name}: {count}" for name, count in counts.items()))
