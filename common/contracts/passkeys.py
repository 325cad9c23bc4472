"""The auth service's passkey subjects (SPEC §2b): WebAuthn registration and login ceremonies, and management."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from common.contracts import subjects
from common.contracts.auth import Tokens
from common.contracts.mfa import PasskeyInfo
from common.contracts.rpc import Contract, Empty, Message, Text

# A browser's WebAuthn credential JSON: a few kilobytes at most (attestation certificates are not asked for).
MAX_CREDENTIAL_BYTES = 64 * 1024
Credential = dict[str, Any]  # PublicKeyCredential.toJSON(), checked by py_webauthn in the auth service


def _check_size(credential: Credential) -> None:
    if len(msgspec.json.encode(credential)) > MAX_CREDENTIAL_BYTES:
        raise ValueError(f"credential must be at most {MAX_CREDENTIAL_BYTES} bytes long")
    if not _within_int64(credential):
        raise ValueError("credential must hold no integer beyond 64 bits")


def _within_int64(value: Any) -> bool:
    """No integer in `value` is beyond what JSON peers hold as 64-bit integers (none is in a real credential)."""
    if isinstance(value, dict):
        return all(_within_int64(item) for item in value.values())
    if isinstance(value, list):
        return all(_within_int64(item) for item in value)
    return not isinstance(value, int) or -(2**63) <= value < 2**64


class RegisterVerify(Message):
    credential: Credential
    name: Text

    def __post_init__(self) -> None:
        _check_size(self.credential)


class PasskeyRef(Message):
    id: uuid.UUID


class PasskeyRename(Message):
    id: uuid.UUID
    name: Text


class LoginOptions(Message):
    slug: Text | None = None  # none: a discoverable credential (passwordless, the browser picks the account)


class LoginVerify(Message):
    credential: Credential
    mfa_token: Text | None = None  # a passkey as the second factor after a password

    def __post_init__(self) -> None:
        _check_size(self.credential)


WebAuthnOptions = dict[str, Any]  # PublicKeyCredentialCreationOptions / RequestOptions as JSON

REGISTER_OPTIONS = Contract(subjects.AUTH_PASSKEY_REGISTER_OPTIONS, Empty, WebAuthnOptions, errors=(401,))
REGISTER_VERIFY = Contract(subjects.AUTH_PASSKEY_REGISTER_VERIFY, RegisterVerify, PasskeyInfo, errors=(400, 401))
LIST = Contract(subjects.AUTH_PASSKEY_LIST, Empty, list[PasskeyInfo], errors=(401,))
RENAME = Contract(subjects.AUTH_PASSKEY_RENAME, PasskeyRename, PasskeyInfo, errors=(400, 401, 404))
DELETE = Contract(subjects.AUTH_PASSKEY_DELETE, PasskeyRef, errors=(401, 404))
LOGIN_OPTIONS = Contract(subjects.AUTH_PASSKEY_LOGIN_OPTIONS, LoginOptions, WebAuthnOptions, errors=(400,))
LOGIN_VERIFY = Contract(subjects.AUTH_PASSKEY_LOGIN_VERIFY, LoginVerify, Tokens, errors=(400, 401, 429))
