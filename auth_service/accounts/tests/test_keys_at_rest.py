"""Signing keys encrypted at rest: what the database holds, rotation of the key-encryption key, a wrong key."""

from __future__ import annotations

import io

import jwt
import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from auth_service.accounts.keyring import SEALED_PREFIX, KeyEncryptionError, unseal
from auth_service.accounts.models import SigningKey
from auth_service.accounts.services import signing_keys
from auth_service.accounts.tests.conftest import AuthApi

pytestmark = pytest.mark.django_db


def stored_private_halves() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_pem FROM accounts_signingkey")
        return [row[0] for row in cursor.fetchall()]


def verify_with_jwks(token: str) -> dict[str, object]:
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(key for key in signing_keys.jwks_get()["keys"] if key["kid"] == kid)
    return dict(jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], options={"verify_aud": False}))


def sign() -> str:
    signing_keys.signing_key_cache_forget()
    kid, key = signing_keys.signing_key_for_signing()
    return jwt.encode({"sub": "x"}, key, algorithm="RS256", headers={"kid": kid})


def test_the_database_holds_no_private_key_in_the_clear() -> None:
    signing_keys.signing_key_ensure_active()

    stored = stored_private_halves()

    assert len(stored) == 2  # the active key and the published next one
    assert all(value.startswith(SEALED_PREFIX) and "PRIVATE KEY" not in value for value in stored)
    assert verify_with_jwks(sign())["sub"] == "x"
    assert "PRIVATE KEY" not in repr(SigningKey.objects.first())


def test_rotating_the_key_encryption_key() -> None:
    signing_keys.signing_key_ensure_active()
    token = sign()
    old = list(SigningKey.objects.values_list("kid", "private_pem"))
    current = settings.KEY_ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()

    with override_settings(KEY_ENCRYPTION_KEYS=[new, current]):
        out = io.StringIO()
        call_command("reencrypt_secrets", stdout=out)
        assert "re-encrypted 2 signing key(s)" in out.getvalue()
    reencrypted = dict(SigningKey.objects.values_list("kid", "private_pem"))
    assert all(reencrypted[kid] != sealed for kid, sealed in old)

    with override_settings(KEY_ENCRYPTION_KEYS=[new]):  # the old key is gone: everything still decrypts
        assert signing_keys.signing_keys_check() == 2
        assert verify_with_jwks(sign())["sub"] == "x"
        assert verify_with_jwks(token)["sub"] == "x"
    with override_settings(KEY_ENCRYPTION_KEYS=[current]), pytest.raises(KeyEncryptionError):
        signing_keys.signing_keys_check()  # the rows are under the new key only now
    signing_keys.signing_key_cache_forget()


def test_a_wrong_key_encryption_key_stops_the_bridge_at_start_with_a_clear_error(auth: AuthApi) -> None:
    signing_keys.signing_key_ensure_active()
    kids = set(SigningKey.objects.values_list("kid", flat=True))
    wrong = Fernet.generate_key().decode()

    with override_settings(KEY_ENCRYPTION_KEYS=[wrong]):
        with pytest.raises(KeyEncryptionError, match="cannot be decrypted with KEY_ENCRYPTION_KEYS"):
            signing_keys.signing_keys_check()
        with pytest.raises(CommandError, match=r"auth cannot start: signing key .* cannot be decrypted") as raised:
            call_command("nats_bridge")
        with pytest.raises(CommandError, match="cannot be decrypted"):
            call_command("reencrypt_secrets", stdout=io.StringIO())
    message = str(raised.value)
    assert any(f"signing key {kid} " in message for kid in kids)
    assert "PRIVATE KEY" not in message


def test_a_malformed_key_encryption_key_is_named_as_such() -> None:
    signing_keys.signing_key_ensure_active()
    with (
        override_settings(KEY_ENCRYPTION_KEYS=["not-a-fernet-key"]),
        pytest.raises(KeyEncryptionError, match="must be Fernet keys"),
    ):
        signing_keys.signing_keys_check()
    with (
        override_settings(KEY_ENCRYPTION_KEYS=[]),
        pytest.raises(KeyEncryptionError, match="must name at least one key"),
    ):
        signing_keys.signing_keys_check()


def test_the_migration_encrypts_keys_stored_in_the_clear() -> None:
    signing_keys.signing_key_ensure_active()
    key = SigningKey.objects.get(state=SigningKey.State.ACTIVE)
    clear = unseal(key.private_pem, what="test")
    SigningKey.objects.filter(pk=key.pk).update(private_pem=clear)
    with pytest.raises(KeyEncryptionError, match="not encrypted at rest"):
        signing_keys.signing_keys_check()

    migration = __import__("auth_service.accounts.migrations.0003_signing_keys_encrypted_at_rest", fromlist=["encrypt"])
    migration.encrypt(apps, None)

    assert signing_keys.signing_keys_check() == 2
    assert all("PRIVATE KEY" not in value for value in stored_private_halves())
