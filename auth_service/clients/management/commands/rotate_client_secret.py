"""`manage_auth.py rotate_client_secret CLIENT_ID`: a new secret; the old one and the client's tokens stop working."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_service.clients.services import client_secret_rotate
from common.contracts.errors import ServiceError


class Command(BaseCommand):
    help = "Give a service account a new secret (printed once); its old secret and tokens are refused at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client_id")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            client, secret = client_secret_rotate(client_id=options["client_id"])
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"client_id: {client.client_id}")
        self.stdout.write(f"client_secret: {secret}")
