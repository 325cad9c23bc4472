"""Secrets and keys: random codes and tokens, their stored digests, and RSA signing-key material."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils.crypto import salted_hmac
from jwcrypto import jwk

RSA_KEY_SIZE = 2048
_CODE_SALT = "authmesh.accounts.verification-code"


def new_verification_code() -> str:
    """Six digits from the OS CSPRNG, leading zeros kept."""
    return f"{secrets.randbelow(1_000_000):06d}"


def verification_code_digest(*, user_id: str, code: str) -> str:
    # Keyed with SECRET_KEY (a million codes are trivially enumerable from a plain hash) and bound to the user
    # so that equal codes of two users never share a digest.
    return salted_hmac(_CODE_SALT, f"{user_id}:{code}", algorithm="sha256").hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """256 random bits need no key: SHA-256 alone makes the stored value useless to whoever reads it."""
    return hashlib.sha256(token.encode()).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class KeyMaterial:
    kid: str
    private_pem: str
    public_jwk: dict[str, Any]


def new_rsa_key() -> KeyMaterial:
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_material_from_pem(private_pem=pem)


def key_material_from_pem(*, private_pem: str, public_pem: str | None = None) -> KeyMaterial:
    """Validate an RSA private key (and, if given, that the public key is its own) and derive its public JWK."""
    try:
        private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("The private key is not an unencrypted PEM private key") from exc
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("The private key must be an RSA key")
    if private.key_size < RSA_KEY_SIZE:
        raise ValueError(f"The RSA key must be at least {RSA_KEY_SIZE} bits")
    public_numbers = private.public_key().public_numbers()
    if public_pem is not None:
        try:
            public = serialization.load_pem_public_key(public_pem.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError("The public key is not a PEM public key") from exc
        if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != public_numbers:
            raise ValueError("The public key does not belong to the private key")
    # jwcrypto does the JWK work PyJWT has no API for: the RFC 7638 thumbprint (the kid, stable across imports of
    # the same key) and the export of the public members only.
    key = jwk.JWK.from_pyca(private.public_key())
    kid = key.thumbprint()
    public_jwk: dict[str, Any] = {**key.export_public(as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}
    return KeyMaterial(kid=kid, private_pem=private_pem, public_jwk=public_jwk)


_private_keys: dict[str, rsa.RSAPrivateKey] = {}
_private_keys_lock = threading.Lock()


def private_key(*, kid: str, private_pem: str) -> rsa.RSAPrivateKey:
    """Parse once per process: loading a PEM checks the key and costs far more than signing with it."""
    key = _private_keys.get(kid)
    if key is None:
        loaded = serialization.load_pem_private_key(private_pem.encode(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("signing key is not RSA")
        with _private_keys_lock:
            key = _private_keys.setdefault(kid, loaded)
    return key
