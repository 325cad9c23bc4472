"""Signing keys: the JWKS endpoint and subject, rotation next → active → retired → deleted, PEM import."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from auth_service.accounts.crypto import new_rsa_key
from auth_service.accounts.models import SigningKey
from auth_service.accounts.services import housekeeping, signing_keys
from auth_service.accounts.tests.conftest import AuthApi
from auth_service.accounts.tests.factories import UserFactory
from common.contracts import subjects


def states() -> dict[str, str]:
    return dict(SigningKey.objects.values_list("kid", "state"))


def write_pem_pair(directory: Path, *, key_size: int = 2048) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    private = directory / "private.pem"
    public = directory / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.mark.django_db
def test_jwks_endpoint_publishes_the_active_and_next_public_keys_with_cache_headers(client: Client) -> None:
    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert sorted(states().values()) == ["active", "next"]
    assert {key["kid"] for key in keys} == set(states())
    for key in keys:
        assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
    assert client.post("/.well-known/jwks.json").status_code == 405


def test_the_jwks_subject_answers_the_same_set(auth: AuthApi) -> None:
    keys = auth(subjects.AUTH_JWKS)

    assert keys == signing_keys.jwks_get()
    assert len(keys["keys"]) == 2


def test_rotation_promotes_the_published_next_key_and_old_tokens_stay_verifiable(auth: AuthApi) -> None:
    user = UserFactory()
    before = auth.login(user.email)
    old_kid = jwt.get_unverified_header(before["accessToken"])["kid"]
    next_kid = SigningKey.objects.get(state="next").kid

    output = io.StringIO()
    call_command("rotate_keys", stdout=output)

    assert output.getvalue() == f"Active signing key: {next_kid}\n"
    assert states()[old_kid] == "retired"
    assert states()[next_kid] == "active"
    assert list(states().values()).count("next") == 1
    after = auth.login(user.email)
    assert jwt.get_unverified_header(after["accessToken"])["kid"] == next_kid
    assert auth.decode_access(before["accessToken"])[1]["sub"] == str(user.id)
    assert auth.decode_access(after["accessToken"])[1]["sub"] == str(user.id)
    assert len(auth.jwks()["keys"]) == 3


@pytest.mark.django_db
def test_retired_keys_are_deleted_once_no_token_they_signed_can_be_alive() -> None:
    signing_keys.signing_key_ensure_active()
    signing_keys.signing_key_rotate()
    retired = SigningKey.objects.get(state="retired")
    SigningKey.objects.filter(pk=retired.pk).update(retired_at=timezone.now() - timedelta(minutes=29))

    signing_keys.signing_key_rotate()
    assert SigningKey.objects.filter(pk=retired.pk).exists()  # 29 min < 2 x 15 min + margin: still published

    SigningKey.objects.filter(pk=retired.pk).update(retired_at=timezone.now() - timedelta(minutes=31))
    assert housekeeping.expired_records_purge()["signing_keys"] == 1
    assert not SigningKey.objects.filter(pk=retired.pk).exists()


@pytest.mark.django_db
def test_scheduled_rotation_waits_until_the_key_is_old_enough() -> None:
    active = signing_keys.signing_key_ensure_active()

    assert signing_keys.signing_key_rotate(min_age=timedelta(days=30)).kid == active.kid
    SigningKey.objects.filter(pk=active.pk).update(activated_at=timezone.now() - timedelta(days=31))
    assert signing_keys.signing_key_rotate(min_age=timedelta(days=30)).kid != active.kid
    assert states()[active.kid] == "retired"


@pytest.mark.django_db
def test_rotate_keys_from_pem_imports_the_originals_certs_once(tmp_path: Path) -> None:
    signing_keys.signing_key_ensure_active()
    private, public = write_pem_pair(tmp_path)

    output = io.StringIO()
    call_command("rotate_keys", "--from-pem", str(private), str(public), stdout=output)
    imported = SigningKey.objects.get(state="active")
    call_command("rotate_keys", "--from-pem", str(private), str(public), stdout=output)

    assert output.getvalue() == f"Active signing key: {imported.kid} (imported)\n" * 2
    assert SigningKey.objects.get(state="active").pk == imported.pk
    assert sorted(states().values()) == ["active", "next", "retired"]
    kid, key = signing_keys.signing_key_for_signing()
    assert kid == imported.kid
    token = jwt.encode({"sub": "x"}, key, algorithm="RS256")
    assert jwt.decode(token, public.read_text(), algorithms=["RS256"]) == {"sub": "x"}


@pytest.mark.django_db
def test_rotate_keys_from_pem_refuses_a_mismatched_or_weak_pair(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "weak").mkdir()
    private_a, _ = write_pem_pair(tmp_path / "a")
    _, public_b = write_pem_pair(tmp_path / "b")
    weak_private, weak_public = write_pem_pair(tmp_path / "weak", key_size=1024)

    with pytest.raises(CommandError, match="The public key does not belong to the private key"):
        call_command("rotate_keys", "--from-pem", str(private_a), str(public_b))
    with pytest.raises(CommandError, match="at least 2048 bits"):
        call_command("rotate_keys", "--from-pem", str(weak_private), str(weak_public))
    with pytest.raises(CommandError, match="Cannot read the PEM files"):
        call_command("rotate_keys", "--from-pem", str(tmp_path / "missing.pem"), str(public_b))
    assert SigningKey.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_processes_creating_the_first_key_at_once_make_exactly_one() -> None:
    barrier = threading.Barrier(4)
    kids: list[str] = []

    def create() -> None:
        try:
            barrier.wait()
            kids.append(signing_keys.signing_key_ensure_active().kid)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(kids)) == 1
    assert sorted(states().values()) == ["active", "next"]


def test_the_kid_is_the_rfc7638_thumbprint_and_only_public_members_are_published() -> None:
    material = new_rsa_key()
    jwk = material.public_jwk
    # RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace, base64url.
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert material.kid == jwk["kid"] == thumbprint
    assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
    private = serialization.load_pem_private_key(material.private_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    signed = jwt.encode({"sub": "u"}, private, algorithm="RS256")
    assert jwt.decode(signed, jwt.PyJWK(jwk).key, algorithms=["RS256"]) == {"sub": "u"}
