"""`manage_auth.py rotate_keys [--if-missing | --from-pem private.pem public.pem]`: rotate the signing keys or import PEM files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_service.accounts.services.signing_keys import (
    signing_key_ensure_active,
    signing_key_import_pem,
    signing_key_rotate,
)
from common.contracts.errors import ServiceError


class Command(BaseCommand):
    help = "Promote the next signing key, retire the active one and publish a new next key; or import PEM files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from-pem",
            nargs=2,
            metavar=("PRIVATE_PEM", "PUBLIC_PEM"),
            help="make this RSA key pair (the original's certs/private.pem and certs/public.pem) the active key",
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="only make sure an active key exists (what a first start needs); rotate nothing otherwise",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["from_pem"]:
            private_path, public_path = (Path(p) for p in options["from_pem"])
            try:
                key = signing_key_import_pem(private_pem=private_path.read_text(), public_pem=public_path.read_text())
            except OSError as exc:
                raise CommandError(f"Cannot read the PEM files: {exc.strerror}") from None
            except ServiceError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(self.style.SUCCESS(f"Active signing key: {key.kid} (imported)"))
            return
        if options["if_missing"]:
            key = signing_key_ensure_active()
            self.stdout.write(self.style.SUCCESS(f"Active signing key: {key.kid}"))
            return
        key = signing_key_rotate()
        self.stdout.write(self.style.SUCCESS(f"Active signing key: {key.kid}"))
