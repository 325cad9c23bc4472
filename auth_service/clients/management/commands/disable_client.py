"""`manage_auth.py disable_client CLIENT_ID [--enable]`: disable a service account (its tokens die at once), or enable it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_service.clients.services import client_disable, client_enable
from common.contracts.errors import ServiceError


class Command(BaseCommand):
    help = "Disable a service account (its tokens are refused at once); --enable lets it obtain tokens again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client_id")
        parser.add_argument("--enable", action="store_true", help="enable it again instead")

    def handle(self, *args: Any, **options: Any) -> None:
        change = client_enable if options["enable"] else client_disable
        try:
            client = change(client_id=options["client_id"])
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{client.client_id}: {'enabled' if client.is_active else 'disabled'}")
