"""`manage_auth.py revoke_key KID`: remove a compromised signing key at once and tell every gateway to drop it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_service.accounts.key_revocation import key_revocation_broadcast
from auth_service.accounts.services.signing_keys import signing_key_revoke
from common.contracts.errors import NotFound, ServiceError


class Command(BaseCommand):
    help = (
        "Delete the signing key KID (an active key is replaced by the next one first) and broadcast its revocation "
        "to every gateway, which drops it from its key cache: access tokens it signed stop working at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "kid",
            help="the key id (the `kid` of the JWKS and of the tokens' headers); one starting with '-' goes after "
            "'--' (`revoke_key -- -33i6...`), as a key id is base64url and may",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kid = options["kid"]
        try:
            active = signing_key_revoke(kid=kid).kid
        except NotFound:
            # Already removed (a first run whose broadcast failed): announce it again, which is harmless.
            self.stderr.write(f"No signing key {kid} in the database; broadcasting its revocation anyway.")
            active = None
        try:
            key_revocation_broadcast(kid)
        except ServiceError as exc:
            raise CommandError(
                f"Key {kid} removed, but the gateways were not told ({exc}): each drops it when its key cache "
                "expires (JWKS_CACHE_SECONDS, 300 s by default). Run the command again once NATS is back."
            ) from None
        self.stdout.write(self.style.SUCCESS(f"Revoked signing key {kid}; active signing key: {active or 'unchanged'}"))
