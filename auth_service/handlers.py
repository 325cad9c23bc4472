"""NATS subjects of the auth service: each handler is given its request decoded with the subject's contract
(common/contracts: auth, mfa, oauth), calls one service and answers the contract's reply."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from auth_service.accounts import selectors
from auth_service.accounts.key_revocation import forget_revoked_keys
from auth_service.accounts.services import login, mfa, recovery, registration, seed, sessions, signing_keys, users
from auth_service.accounts.snapshots import iso, user_public
from auth_service.audit.context import client_context
from auth_service.clients import services as clients
from common.contracts import auth as c
from common.contracts import mfa as m
from common.contracts import oauth
from common.contracts.envelope import Agent, Request
from common.contracts.errors import Unauthorized, ValidationFailed
from common.contracts.rpc import Empty
from common.contracts.users import UserPublic
from common.messaging.bridge import BackgroundTask, Handler, handlers
from common.outbox.relay import LocalRelay


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


def _token_reply(pair: sessions.TokenPair) -> c.Tokens:
    return c.Tokens(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        refresh_expires_at=iso(datetime.fromtimestamp(pair.refresh_expires_at, tz=UTC)),
        session_id=pair.session_id,
    )


# -- identity flows ------------------------------------------------------------------------------------------------


def handle_signup_user(request: Request, data: c.Signup) -> None:
    registration.user_register(name=data.name, username=data.username, email=data.email, password=data.password)


def handle_verify_account(request: Request, data: c.VerifyAccount) -> None:
    registration.user_verify(email=data.email, code=data.code)


def handle_resend_verification(request: Request, data: c.EmailOnly) -> None:
    registration.verification_resend(email=data.email)


def handle_login_user(request: Request, data: c.Login) -> c.Tokens | c.MfaChallenge:
    ip, user_agent = _client(request)
    result = login.user_authenticate(slug=data.slug, password=data.password, ip=ip, user_agent=user_agent)
    if isinstance(result, login.MfaChallenge):
        return c.MfaChallenge(mfa_required=True, mfa_token=result.mfa_token, methods=list(result.methods))
    return _token_reply(result)


def handle_login_mfa(request: Request, data: m.LoginMfa) -> c.Tokens:
    if (data.code is None) == (data.recovery_code is None):
        raise ValidationFailed(
            "Give one of code or recoveryCode", fields={"code": ["code or recoveryCode is required"]}
        )
    ip, user_agent = _client(request)
    pair = login.mfa_authenticate(
        mfa_token=data.mfa_token, code=data.code, recovery_code=data.recovery_code, ip=ip, user_agent=user_agent
    )
    return _token_reply(pair)


def handle_revalidate_credentials(request: Request, data: c.RefreshToken) -> c.Tokens:
    ip, user_agent = _client(request)
    return _token_reply(sessions.session_rotate(refresh_token=data.refresh_token, ip=ip, user_agent=user_agent))


def handle_logout_user(request: Request, data: c.Logout) -> None:
    sessions.session_logout(refresh_token=data.refresh_token, all_sessions=data.all)


def handle_sessions_list(request: Request, data: Empty) -> list[c.SessionInfo]:
    agent = _agent(request)
    return [
        c.SessionInfo(
            id=session.sid,
            device=session.device,
            ip=session.ip,
            created_at=iso(datetime.fromtimestamp(session.created, tz=UTC)),
            last_used_at=iso(datetime.fromtimestamp(session.last_used, tz=UTC)),
            current=session.sid == agent.sid,
        )
        for session in selectors.session_list(user_id=agent.id)
    ]


def handle_sessions_end(request: Request, data: c.SessionRef) -> None:
    sessions.session_end(user_id=_agent(request).id, sid=data.session_id)


def handle_recover_credentials(request: Request, data: c.SlugOnly) -> None:
    recovery.recovery_request(slug=data.slug)


def handle_reset_password(request: Request, data: c.ResetPassword) -> None:
    recovery.password_reset(recovery_token=data.recovery_token, password=data.password)


def handle_deny_access(request: Request, data: c.DenyAccess) -> None:
    users.access_deny(agent_id=_agent(request).id, user_id=str(data.user_id))


def handle_jwks_get(request: Request, data: Empty) -> dict[str, Any]:
    return signing_keys.jwks_get()


def handle_oauth_token(request: Request, data: oauth.TokenRequest) -> oauth.IssuedToken:
    issued = clients.client_token_issue(client_id=data.client_id, client_secret=data.client_secret, scope=data.scope)
    return oauth.IssuedToken(access_token=issued.access_token, expires_in=issued.expires_in, scope=issued.scope)


# -- second factors ------------------------------------------------------------------------------------------------


def handle_mfa_status(request: Request, data: Empty) -> m.MfaStatus:
    status = selectors.mfa_status_get(_agent(request).id)
    passkeys = [
        m.PasskeyInfo(
            id=p.id,
            name=p.name,
            created_at=iso(p.created_at),
            last_used_at=iso(p.last_used_at) if p.last_used_at else None,
        )
        for p in status.passkeys
    ]
    return m.MfaStatus(totp=status.totp, recovery_codes_left=status.recovery_codes_left, passkeys=passkeys)


def handle_totp_setup(request: Request, data: Empty) -> m.TotpSetup:
    setup = mfa.totp_setup(user_id=_agent(request).id)
    return m.TotpSetup(secret=setup.secret, otpauth_uri=setup.otpauth_uri, qr_svg=setup.qr_svg)


def handle_totp_confirm(request: Request, data: m.CodeOnly) -> m.RecoveryCodes:
    return m.RecoveryCodes(recovery_codes=mfa.totp_confirm(user_id=_agent(request).id, code=data.code))


def handle_totp_disable(request: Request, data: m.PasswordAndCode) -> None:
    mfa.totp_disable(user_id=_agent(request).id, password=data.password, code=data.code, ip=_client(request)[0])


def handle_recovery_codes_regenerate(request: Request, data: m.PasswordAndCode) -> m.RecoveryCodes:
    codes = mfa.recovery_codes_regenerate(
        user_id=_agent(request).id, password=data.password, code=data.code, ip=_client(request)[0]
    )
    return m.RecoveryCodes(recovery_codes=codes)


def handle_mfa_reset(request: Request, data: c.UserRef) -> None:
    mfa.mfa_reset(agent_id=_agent(request).id, user_id=str(data.id))


# -- user management -------------------------------------------------------------------------------------------------


def handle_user_create(request: Request, data: c.UserCreate) -> UserPublic:
    user = users.user_create(
        agent_id=_agent(request).id,
        name=data.name,
        username=data.username,
        email=data.email,
        password=data.password,
        roles=data.roles,
    )
    return user_public(user)


def handle_user_update(request: Request, data: c.UserUpdate) -> UserPublic:
    agent = _agent(request)
    user = users.user_update(
        agent_id=agent.id, user_id=str(data.id), changes=data.changes.present(), agent_sid=agent.sid
    )
    return user_public(user)


def handle_user_deactivate(request: Request, data: c.UserRef) -> UserPublic:
    return user_public(users.user_deactivate(agent_id=_agent(request).id, user_id=str(data.id)))


def handle_user_delete(request: Request, data: c.UserRef) -> None:
    users.user_delete(agent_id=_agent(request).id, user_id=str(data.id))


def handle_seed(request: Request, data: Empty) -> c.SeedDone:
    seed.seed()
    return c.SeedDone(ok=True)


def _in_client_context(handler: Handler) -> Handler:
    """Run a handler with its caller's IP and user agent in context, where the security log finds them."""

    @functools.wraps(handler)
    def wrapped(request: Request) -> Any:
        ip, user_agent = _client(request)
        with client_context(ip=ip, user_agent=user_agent):
            return handler(request)

    return wrapped


_HANDLERS = handlers(
    {
        c.SIGNUP: handle_signup_user,
        c.VERIFY_ACCOUNT: handle_verify_account,
        c.RESEND_VERIFICATION: handle_resend_verification,
        c.LOGIN: handle_login_user,
        c.REVALIDATE: handle_revalidate_credentials,
        c.LOGOUT: handle_logout_user,
        c.SESSIONS_LIST: handle_sessions_list,
        c.SESSIONS_END: handle_sessions_end,
        c.RECOVER: handle_recover_credentials,
        c.RESET_PASSWORD: handle_reset_password,
        c.DENY_ACCESS: handle_deny_access,
        c.JWKS: handle_jwks_get,
        oauth.TOKEN: handle_oauth_token,
        m.LOGIN_MFA: handle_login_mfa,
        m.MFA_STATUS: handle_mfa_status,
        m.TOTP_SETUP: handle_totp_setup,
        m.TOTP_CONFIRM: handle_totp_confirm,
        m.TOTP_DISABLE: handle_totp_disable,
        m.RECOVERY_CODES_REGENERATE: handle_recovery_codes_regenerate,
        m.MFA_RESET: handle_mfa_reset,
        c.USER_CREATE: handle_user_create,
        c.USER_UPDATE: handle_user_update,
        c.USER_DEACTIVATE: handle_user_deactivate,
        c.USER_DELETE: handle_user_delete,
        c.SEED: handle_seed,
    }
)
HANDLERS: dict[str, Handler] = {subject: _in_client_context(handler) for subject, handler in _HANDLERS.items()}
# Relays outbox rows from this process right after they commit (OUTBOX_KICK wakes it); beat stays the safety net.
BACKGROUND: list[BackgroundTask] = [LocalRelay(), forget_revoked_keys]
# Before the bridge serves: every stored signing key decrypts with KEY_ENCRYPTION_KEYS.
STARTUP = [signing_keys.signing_keys_check]
