"""`manage_auth.py create_client NAME --scope users:read [--scope ...]`: a new service account; prints its secret once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_service.clients.services import client_create
from common.contracts.errors import ServiceError
from common.contracts.oauth import SCOPES


class Command(BaseCommand):
    help = "Create a service account (OAuth 2.0 client credentials) and print its client_id and secret (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="what the client is, for the admin")
        parser.add_argument(
            "--scope", action="append", default=[], choices=SCOPES, required=True, help="a scope it may hold"
        )
        parser.add_argument(
            "--shell", action="store_true", help="print `export CLIENT_ID=... CLIENT_SECRET=...` for a shell's eval"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            client, secret = client_create(name=options["name"], scopes=options["scope"])
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        if options["shell"]:
            # Both values are URL-safe base64: nothing in them needs shell quoting.
            self.stdout.write(f"export CLIENT_ID={client.client_id} CLIENT_SECRET={secret}")
            return
        self.stdout.write(f"client_id: {client.client_id}")
        self.stdout.write(f"client_secret: {secret}")
        self.stdout.write(f"scope: {' '.join(client.scopes)}")
        self.stderr.write("The secret is shown only this once; only its digest is stored.")
