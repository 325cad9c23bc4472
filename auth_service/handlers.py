"""NATS subjects of the auth service (docs/CONTRACTS.md): check the payload's shape, call one service, render."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from auth_service.accounts import selectors
from auth_service.accounts.key_revocation import forget_revoked_keys
from auth_service.accounts.services import (
    login,
    mfa,
    passkeys,
    recovery,
    registration,
    seed,
    sessions,
    signing_keys,
    users,
)
from auth_service.accounts.snapshots import iso, user_public
from auth_service.audit.context import client_context
from common.contracts import subjects
from common.contracts.envelope import Agent, Request
from common.contracts.errors import Unauthorized, ValidationFailed
from common.messaging.bridge import BackgroundTask, Handler
from common.outbox.relay import LocalRelay

# Longer than any legitimate value (passwords are capped at 128, tokens are a few hundred bytes): refused before
# any hashing or parsing work is spent on it.
MAX_STRING_LENGTH = 4096
USER_CHANGE_FIELDS = ("name", "username", "email", "roles", "password", "oldPassword")

Check = Callable[[Any], str | None]


def _string(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_STRING_LENGTH:
        return f"must be at most {MAX_STRING_LENGTH} characters long"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean"


def _string_list(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value) or len(value) > 10:
        return "must be a list of strings"
    return None


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be an object"


# A browser's WebAuthn credential JSON (a few kilobytes at most; attestation certificates are not asked for).
MAX_CREDENTIAL_BYTES = 64 * 1024


def _credential(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object"
    if len(json.dumps(value)) > MAX_CREDENTIAL_BYTES:
        return f"must be at most {MAX_CREDENTIAL_BYTES} bytes long"
    return None


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a UUID"
    try:
        uuid.UUID(value)
    except ValueError:
        return "must be a UUID"
    return None


def _validated(
    data: Any, *, required: Mapping[str, Check], optional: Mapping[str, Check] | None = None
) -> dict[str, Any]:
    """The payload as a dict with exactly the known keys: unknown keys, missing keys and wrong types are a 400."""
    optional = optional or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object")
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in required and key not in optional:
            errors[str(key)] = [f"property {key} should not exist"]
    for key, check in {**required, **optional}.items():
        if key not in data or data[key] is None:
            if key in required:
                errors[key] = [f"{key} is required"]
            continue
        if (problem := check(data[key])) is not None:
            errors[key] = [f"{key} {problem}"]
    if errors:
        raise ValidationFailed(
            [message for messages in errors.values() for message in messages], fields=dict(sorted(errors.items()))
        )
    return {key: value for key, value in data.items() if value is not None}


def _agent(request: Request) -> Agent:
    if request.agent is None:
        raise Unauthorized("Authentication required")
    return request.agent


def _client(request: Request) -> tuple[str | None, str | None]:
    """Caller's IP and user agent as the gateway saw them (for session metadata)."""
    client = request.client or {}
    agent = request.agent
    ip = client.get("ip") or (agent.ip if agent else None)
    user_agent = client.get("user_agent") or (agent.user_agent if agent else None)
    return (str(ip) if ip else None, str(user_agent) if user_agent else None)


def _token_reply(pair: sessions.TokenPair) -> dict[str, Any]:
    return {
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
        "refreshExpiresAt": iso(datetime.fromtimestamp(pair.refresh_expires_at, tz=UTC)),
        "sessionId": pair.session_id,
    }


# -- identity flows ------------------------------------------------------------------------------------------------


def handle_signup_user(request: Request) -> None:
    data = _validated(
        request.data, required={"name": _string, "username": _string, "email": _string, "password": _string}
    )
    registration.user_register(
        name=data["name"], username=data["username"], email=data["email"], password=data["password"]
    )


def handle_verify_account(request: Request) -> None:
    data = _validated(request.data, required={"email": _string, "code": _string})
    registration.user_verify(email=data["email"], code=data["code"])


def handle_resend_verification(request: Request) -> None:
    data = _validated(request.data, required={"email": _string})
    registration.verification_resend(email=data["email"])


def handle_login_user(request: Request) -> dict[str, Any]:
    data = _validated(request.data, required={"slug": _string, "password": _string})
    ip, user_agent = _client(request)
    result = login.user_authenticate(slug=data["slug"], password=data["password"], ip=ip, user_agent=user_agent)
    if isinstance(result, login.MfaChallenge):
        return {"mfaRequired": True, "mfaToken": result.mfa_token, "methods": list(result.methods)}
    return _token_reply(result)


def handle_login_mfa(request: Request) -> dict[str, Any]:
    data = _validated(request.data, required={"mfaToken": _string}, optional={"code": _string, "recoveryCode": _string})
    if ("code" in data) == ("recoveryCode" in data):
        raise ValidationFailed(
            "Give one of code or recoveryCode", fields={"code": ["code or recoveryCode is required"]}
        )
    ip, user_agent = _client(request)
    pair = login.mfa_authenticate(
        mfa_token=data["mfaToken"],
        code=data.get("code"),
        recovery_code=data.get("recoveryCode"),
        ip=ip,
        user_agent=user_agent,
    )
    return _token_reply(pair)


def handle_revalidate_credentials(request: Request) -> dict[str, Any]:
    data = _validated(request.data, required={"refreshToken": _string})
    ip, user_agent = _client(request)
    return _token_reply(sessions.session_rotate(refresh_token=data["refreshToken"], ip=ip, user_agent=user_agent))


def handle_logout_user(request: Request) -> None:
    data = _validated(request.data, required={"refreshToken": _string}, optional={"all": _boolean})
    sessions.session_logout(refresh_token=data["refreshToken"], all_sessions=bool(data.get("all", False)))


def handle_sessions_list(request: Request) -> list[dict[str, Any]]:
    agent = _agent(request)
    _validated(request.data, required={})
    return [
        {
            "id": session.sid,
            "device": session.device,
            "ip": session.ip,
            "createdAt": iso(datetime.fromtimestamp(session.created, tz=UTC)),
            "lastUsedAt": iso(datetime.fromtimestamp(session.last_used, tz=UTC)),
            "current": session.sid == agent.sid,
        }
        for session in selectors.session_list(user_id=agent.id)
    ]


def handle_sessions_end(request: Request) -> None:
    agent = _agent(request)
    data = _validated(request.data, required={"sessionId": _string})
    sessions.session_end(user_id=agent.id, sid=data["sessionId"])


def handle_recover_credentials(request: Request) -> None:
    data = _validated(request.data, required={"slug": _string})
    recovery.recovery_request(slug=data["slug"])


def handle_reset_password(request: Request) -> None:
    data = _validated(request.data, required={"recoveryToken": _string, "password": _string})
    recovery.password_reset(recovery_token=data["recoveryToken"], password=data["password"])


def handle_deny_access(request: Request) -> None:
    agent = _agent(request)
    data = _validated(request.data, required={"userId": _uuid})
    users.access_deny(agent_id=agent.id, user_id=data["userId"])


def handle_jwks_get(request: Request) -> dict[str, Any]:
    return signing_keys.jwks_get()


# -- passkeys -------------------------------------------------------------------------------------------------------


def _passkey_reply(view: selectors.PasskeyInfo) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "createdAt": iso(view.created_at),
        "lastUsedAt": iso(view.last_used_at) if view.last_used_at else None,
    }


def handle_passkey_register_options(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    _validated(request.data, required={})
    return passkeys.passkey_registration_options(user_id=agent.id)


def handle_passkey_register_verify(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    data = _validated(request.data, required={"credential": _credential, "name": _string})
    return _passkey_reply(passkeys.passkey_register(user_id=agent.id, credential=data["credential"], name=data["name"]))


def handle_passkey_list(request: Request) -> list[dict[str, Any]]:
    agent = _agent(request)
    _validated(request.data, required={})
    return [_passkey_reply(view) for view in passkeys.passkey_list(user_id=agent.id)]


def handle_passkey_rename(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    data = _validated(request.data, required={"id": _uuid, "name": _string})
    return _passkey_reply(passkeys.passkey_rename(user_id=agent.id, passkey_id=data["id"], name=data["name"]))


def handle_passkey_delete(request: Request) -> None:
    agent = _agent(request)
    data = _validated(request.data, required={"id": _uuid})
    passkeys.passkey_delete(user_id=agent.id, passkey_id=data["id"])


def handle_passkey_login_options(request: Request) -> dict[str, Any]:
    data = _validated(request.data, required={}, optional={"slug": _string})
    return passkeys.passkey_login_options(slug=data.get("slug"))


def handle_passkey_login_verify(request: Request) -> dict[str, Any]:
    data = _validated(request.data, required={"credential": _credential}, optional={"mfaToken": _string})
    ip, user_agent = _client(request)
    pair = passkeys.passkey_authenticate(
        credential=data["credential"], mfa_token=data.get("mfaToken"), ip=ip, user_agent=user_agent
    )
    return _token_reply(pair)


# -- second factors ------------------------------------------------------------------------------------------------


def handle_mfa_status(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    _validated(request.data, required={})
    status = selectors.mfa_status_get(agent.id)
    listed = [_passkey_reply(passkey) for passkey in status.passkeys]
    return {"totp": status.totp, "recoveryCodesLeft": status.recovery_codes_left, "passkeys": listed}


def handle_totp_setup(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    _validated(request.data, required={})
    setup = mfa.totp_setup(user_id=agent.id)
    return {"secret": setup.secret, "otpauthUri": setup.otpauth_uri, "qrSvg": setup.qr_svg}


def handle_totp_confirm(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    data = _validated(request.data, required={"code": _string})
    return {"recoveryCodes": mfa.totp_confirm(user_id=agent.id, code=data["code"])}


def handle_totp_disable(request: Request) -> None:
    agent = _agent(request)
    data = _validated(request.data, required={"password": _string, "code": _string})
    mfa.totp_disable(user_id=agent.id, password=data["password"], code=data["code"], ip=_client(request)[0])


def handle_recovery_codes_regenerate(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    data = _validated(request.data, required={"password": _string, "code": _string})
    codes = mfa.recovery_codes_regenerate(
        user_id=agent.id, password=data["password"], code=data["code"], ip=_client(request)[0]
    )
    return {"recoveryCodes": codes}


def handle_mfa_reset(request: Request) -> None:
    agent = _agent(request)
    data = _validated(request.data, required={"id": _uuid})
    mfa.mfa_reset(agent_id=agent.id, user_id=data["id"])


# -- user management -------------------------------------------------------------------------------------------------


def handle_user_create(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    data = _validated(
        request.data,
        required={
            "name": _string,
            "username": _string,
            "email": _string,
            "password": _string,
            "roles": _string_list,
        },
    )
    user = users.user_create(
        agent_id=agent.id,
        name=data["name"],
        username=data["username"],
        email=data["email"],
        password=data["password"],
        roles=data["roles"],
    )
    return user_public(user)


def handle_user_update(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    data = _validated(request.data, required={"id": _uuid, "changes": _object})
    changes = _validated(
        data["changes"],
        required={},
        optional={
            "name": _string,
            "username": _string,
            "email": _string,
            "roles": _string_list,
            "password": _string,
            "oldPassword": _string,
        },
    )
    user = users.user_update(agent_id=agent.id, user_id=data["id"], changes=changes, agent_sid=agent.sid)
    return user_public(user)


def handle_user_deactivate(request: Request) -> dict[str, Any]:
    agent = _agent(request)
    data = _validated(request.data, required={"id": _uuid})
    return user_public(users.user_deactivate(agent_id=agent.id, user_id=data["id"]))


def handle_user_delete(request: Request) -> None:
    agent = _agent(request)
    data = _validated(request.data, required={"id": _uuid})
    users.user_delete(agent_id=agent.id, user_id=data["id"])


def handle_seed(request: Request) -> dict[str, bool]:
    seed.seed()
    return {"ok": True}


def _in_client_context(handler: Handler) -> Handler:
    """Run a handler with its caller's IP and user agent in context, where the security log finds them."""

    @functools.wraps(handler)
    def wrapped(request: Request) -> Any:
        ip, user_agent = _client(request)
        with client_context(ip=ip, user_agent=user_agent):
            return handler(request)

    return wrapped


_HANDLERS: dict[str, Handler] = {
    subjects.AUTH_SIGNUP: handle_signup_user,
    subjects.AUTH_VERIFY_ACCOUNT: handle_verify_account,
    subjects.AUTH_RESEND_VERIFICATION: handle_resend_verification,
    subjects.AUTH_LOGIN: handle_login_user,
    subjects.AUTH_REVALIDATE: handle_revalidate_credentials,
    subjects.AUTH_LOGOUT: handle_logout_user,
    subjects.AUTH_SESSIONS_LIST: handle_sessions_list,
    subjects.AUTH_SESSIONS_END: handle_sessions_end,
    subjects.AUTH_RECOVER: handle_recover_credentials,
    subjects.AUTH_RESET_PASSWORD: handle_reset_password,
    subjects.AUTH_DENY_ACCESS: handle_deny_access,
    subjects.AUTH_JWKS: handle_jwks_get,
    subjects.AUTH_PASSKEY_REGISTER_OPTIONS: handle_passkey_register_options,
    subjects.AUTH_PASSKEY_REGISTER_VERIFY: handle_passkey_register_verify,
    subjects.AUTH_PASSKEY_LIST: handle_passkey_list,
    subjects.AUTH_PASSKEY_RENAME: handle_passkey_rename,
    subjects.AUTH_PASSKEY_DELETE: handle_passkey_delete,
    subjects.AUTH_PASSKEY_LOGIN_OPTIONS: handle_passkey_login_options,
    subjects.AUTH_PASSKEY_LOGIN_VERIFY: handle_passkey_login_verify,
    subjects.AUTH_LOGIN_MFA: handle_login_mfa,
    subjects.AUTH_MFA_STATUS: handle_mfa_status,
    subjects.AUTH_TOTP_SETUP: handle_totp_setup,
    subjects.AUTH_TOTP_CONFIRM: handle_totp_confirm,
    subjects.AUTH_TOTP_DISABLE: handle_totp_disable,
    subjects.AUTH_RECOVERY_CODES_REGENERATE: handle_recovery_codes_regenerate,
    subjects.AUTH_MFA_RESET: handle_mfa_reset,
    subjects.AUTH_USER_CREATE: handle_user_create,
    subjects.AUTH_USER_UPDATE: handle_user_update,
    subjects.AUTH_USER_DEACTIVATE: handle_user_deactivate,
    subjects.AUTH_USER_DELETE: handle_user_delete,
    subjects.AUTH_SEED: handle_seed,
}
HANDLERS: dict[str, Handler] = {subject: _in_client_context(handler) for subject, handler in _HANDLERS.items()}
# Relays outbox rows from this process right after they commit (OUTBOX_KICK wakes it); beat stays the safety net.
BACKGROUND: list[BackgroundTask] = [LocalRelay(), forget_revoked_keys]
# Before the bridge serves: every stored signing key decrypts with KEY_ENCRYPTION_KEYS.
STARTUP = [signing_keys.signing_keys_check]
