"""`reencrypt_secrets`: re-encrypt every stored secret under the first of KEY_ENCRYPTION_KEYS (its rotation)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from auth_service.accounts.keyring import KeyEncryptionError
from auth_service.accounts.services.mfa import totp_secrets_reencrypt
from auth_service.accounts.services.signing_keys import signing_keys_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt the stored secrets under the first key of KEY_ENCRYPTION_KEYS. Rotation: put the new key first "
        "(keep the old one after it), run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = signing_keys_reencrypt()
            secrets = totp_secrets_reencrypt()
        except KeyEncryptionError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted {count} signing key(s) under the first key-encryption key")
        self.stdout.write(f"re-encrypted {secrets} TOTP secret(s) under the first key-encryption key")
