"""Encrypt the stored signing keys with KEY_ENCRYPTION_KEYS (auth_service/accounts/keyring.py)."""

from typing import Any

from django.db import migrations

from auth_service.accounts.keyring import SEALED_PREFIX, seal, unseal


def encrypt(apps: Any, schema_editor: Any) -> None:
    SigningKey = apps.get_model("accounts", "SigningKey")
    for key in SigningKey.objects.all():
        if not key.private_pem.startswith(SEALED_PREFIX):
            key.private_pem = seal(key.private_pem)
            key.save(update_fields=["private_pem"])


def decrypt(apps: Any, schema_editor: Any) -> None:
    SigningKey = apps.get_model("accounts", "SigningKey")
    for key in SigningKey.objects.all():
        if key.private_pem.startswith(SEALED_PREFIX):
            key.private_pem = unseal(key.private_pem, what=f"signing key {key.kid}")
            key.save(update_fields=["private_pem"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_roles")]

    operations = [migrations.RunPython(encrypt, decrypt)]
