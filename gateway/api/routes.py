"""The public routes of SPEC §2, each declared once (gateway/api/routing.py says what a declaration holds).

Most forward their validated input to one NATS subject and answer the reply; the few with a body of their own
(log level, seed, JWKS) define it here. The gateway serves the `ROUTES` of every module in
GATEWAY_ROUTE_MODULES, this one first; docs/EXTENDING.md shows how to add one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser

from common.contracts import auth, main, subjects
from common.contracts import mfa as m
from common.contracts.oauth import USERS_READ
from gateway.api import discovery, jwks, oauth, ops
from gateway.api import mfa_serializers as mfa
from gateway.api import serializers as s
from gateway.api.forwarding import agent_of
from gateway.api.permissions import IsAdmin, IsSysAdmin, NotGuest
from gateway.api.routing import BEARER, REFRESH_COOKIE, SESSION_ID, USER_ID, Call, Route

JWKS_CACHE_CONTROL = "public, max-age=300"
# Settings only: it changes with a deployment's configuration, never while one runs.
DISCOVERY_CACHE_CONTROL = "public, max-age=3600"


def log_level(call: Call) -> Any:
    service = call.query["service"]
    if ops.is_local(service):
        return ops.local_log_level()
    return ops.log_level_reply(call.forward(subjects.log_level_get(service)), service)


def set_log_level(call: Call) -> Any:
    service, level = call.body["service"], call.body["level"]
    if ops.is_local(service):
        return ops.broadcast_log_level(level, agent=agent_of(call.request))
    # A request on the broadcast subject: every instance applies it, the first answer confirms it.
    return ops.log_level_reply(call.forward(subjects.log_level_set(service), {"level": level}), service)


def seed(call: Call) -> Any:
    if not settings.SEED_OVER_HTTP:
        raise NotFound(f"Cannot GET {call.request.path}")
    for contract in (auth.SEED, main.SEED):
        call.forward(contract, timeout=settings.SEED_TIMEOUT_SECONDS)
    return {"ok": True}


def key_set(call: Call) -> Any:
    return jwks.get_jwks().document()


def openid_configuration(call: Call) -> Any:
    return discovery.openid_configuration()


ROUTES = [
    # --- public identity flows ---------------------------------------------------------------------------------
    Route(
        "POST",
        "api/signup",
        "Sign up",
        auth.SIGNUP,
        body=s.SignupSerializer,
        throttle="signup",
        throttle_account="email",
        errors=(400, 409, 429),
        name="signup",
        tags=("identity",),
        description="Role `user`, unverified; a 6-digit code is mailed. A registered e-mail also answers 200.",
    ),
    Route(
        "POST",
        "api/verify-account",
        "Verify an account with the mailed code",
        auth.VERIFY_ACCOUNT,
        body=s.VerifyAccountSerializer,
        throttle="verify-account",
        throttle_account="email",
        errors=(400, 429),
        name="verify-account",
        tags=("identity",),
    ),
    Route(
        "POST",
        "api/resend-verification",
        "Mail a new verification code",
        auth.RESEND_VERIFICATION,
        body=s.EmailSerializer,
        throttle="resend-verification",
        throttle_account="email",
        errors=(400, 429),
        name="resend-verification",
        tags=("identity",),
        description="Always 200, whether or not the account exists.",
    ),
    Route(
        "POST",
        "api/login",
        "Log in",
        auth.LOGIN,
        body=s.LoginSerializer,
        reply=mfa.LOGIN_REPLY,
        sets_tokens=True,
        throttle="login",
        throttle_account="slug",
        errors=(400, 401, 429),
        name="login",
        tags=("identity",),
        description=(
            "Sets the refresh cookie `Authentication` (HttpOnly, path /api/auth) and the CSRF cookie, and answers "
            "`{accessToken}`. A user with a second factor gets `{mfaRequired: true, mfaToken, methods}` instead, "
            "with no cookie: finish with POST /api/login/mfa."
        ),
    ),
    Route(
        "POST",
        "api/recover-credentials",
        "Mail a password recovery token",
        auth.RECOVER,
        body=s.SlugSerializer,
        clears_cookies=True,
        throttle="recover-credentials",
        throttle_account="slug",
        errors=(400, 429),
        name="recover-credentials",
        tags=("identity",),
        description="Always 200 with the same body; clears both cookies.",
    ),
    Route(
        "POST",
        "api/reset-password",
        "Set a new password with a recovery token",
        auth.RESET_PASSWORD,
        body=s.ResetPasswordSerializer,
        clears_cookies=True,
        throttle="reset-password",
        throttle_account="recoveryToken",
        errors=(400, 429),
        name="reset-password",
        tags=("identity",),
        description="Ends every session of the user; clears both cookies.",
    ),
    Route(
        "POST",
        "api/oauth/token",
        "Obtain a service account's access token (OAuth 2.0 client credentials)",
        respond=oauth.token,
        body=oauth.TokenRequestSerializer,
        reply=oauth.TokenReplySerializer,
        parsers=(FormParser,),
        render_error=oauth.error_response,
        error_reply=oauth.TokenErrorSerializer,
        throttle="oauth-token",
        throttle_account=oauth.client_id_of,
        errors=(400, 401, 429),
        name="oauth-token",
        title="OAuth Token",
        tags=("oauth",),
        description="RFC 6749 §4.4, form-encoded: `grant_type=client_credentials`, optional `scope`; the client "
        "authenticates with HTTP Basic or `client_id`/`client_secret` in the body. Errors are RFC 6749 §5.2 bodies "
        "(`error`, `error_description`), not the error envelope.",
    ),
    # --- the refresh cookie's routes ---------------------------------------------------------------------------
    Route(
        "POST",
        "api/auth/revalidate-credentials",
        "Refresh the access token",
        auth.REVALIDATE,
        access=REFRESH_COOKIE,
        reply=s.AccessTokenSerializer,
        sets_tokens=True,
        errors=(400, 401, 403),
        name="revalidate-credentials",
        tags=("session",),
        description="Rotates the refresh token (new refresh and CSRF cookies). A reused token ends its session family.",
    ),
    Route(
        "POST",
        "api/auth/logout",
        "Log out",
        auth.LOGOUT,
        access=REFRESH_COOKIE,
        query=s.LogoutQuerySerializer,
        clears_cookies=True,
        errors=(400, 401, 403),
        name="logout",
        tags=("session",),
        description="Ends this session (`?all=true`: every session of the user) and clears the cookies.",
    ),
    # --- bearer routes -----------------------------------------------------------------------------------------
    Route(
        "GET",
        "api/auth/sessions",
        "The caller's sessions",
        auth.SESSIONS_LIST,
        access=BEARER,
        errors=(401,),
        name="sessions",
        title="Session List",
        tags=("session",),
    ),
    Route(
        "DELETE",
        f"api/auth/sessions/{SESSION_ID}",
        "End one of the caller's sessions",
        auth.SESSIONS_END,
        access=BEARER,
        args=(SESSION_ID,),
        status=204,
        errors=(400, 401, 403, 404),
        name="session",
        title="Session Detail",
        tags=("session",),
    ),
    Route(
        "POST",
        "api/auth/deny-access",
        "Deny a user access",
        auth.DENY_ACCESS,
        access=BEARER,
        role=IsSysAdmin,
        body=s.DenyAccessSerializer,
        errors=(400, 401, 403, 404),
        name="deny-access",
        tags=("users",),
        description="Deactivates the user and ends all its sessions; its access tokens stop working at once.",
    ),
    Route(
        "GET",
        "api/user",
        "List users",
        main.USER_FIND_ALL,
        access=BEARER,
        query=s.UserListQuerySerializer,
        scope=USERS_READ,
        errors=(400, 401, 403),
        lean=True,
        name="users",
        title="User Collection",
        tags=("users",),
        description="Every user (inactive and unverified too) unless filtered, oldest first.",
        operation_id="users_list",
    ),
    Route(
        "POST",
        "api/user",
        "Create a user",
        auth.USER_CREATE,
        access=BEARER,
        role=IsAdmin,
        body=s.UserCreateSerializer,
        status=201,
        errors=(400, 401, 403, 409),
        tags=("users",),
        description="Admins and sys_admins; unverified, a code is mailed. Admins cannot grant sys_admin.",
    ),
    # Before api/user/<id>: "deactivate" is a segment here, never an id.
    Route(
        "PATCH",
        f"api/user/deactivate/{USER_ID}",
        "Deactivate a user",
        auth.USER_DEACTIVATE,
        access=BEARER,
        role=NotGuest,
        args=(USER_ID,),
        errors=(400, 401, 403, 404),
        name="user-deactivate",
        tags=("users",),
        description="Self, or as the permission matrix allows; ends the user's sessions.",
    ),
    Route(
        "GET",
        f"api/user/{USER_ID}",
        "One user",
        main.USER_FIND_ONE,
        access=BEARER,
        args=(USER_ID,),
        scope=USERS_READ,
        errors=(400, 401, 403, 404),
        lean=True,
        name="user",
        title="User Detail",
        tags=("users",),
    ),
    Route(
        "PATCH",
        f"api/user/{USER_ID}",
        "Update a user",
        auth.USER_UPDATE,
        access=BEARER,
        role=NotGuest,
        args=(USER_ID,),
        body=s.UserUpdateSerializer,
        body_key="changes",
        errors=(400, 401, 403, 404, 409),
        tags=("users",),
        description="Permission matrix in the auth service; a password change needs `oldPassword`.",
    ),
    Route(
        "DELETE",
        f"api/user/{USER_ID}",
        "Delete a user",
        auth.USER_DELETE,
        access=BEARER,
        role=IsSysAdmin,
        args=(USER_ID,),
        status=204,
        errors=(400, 401, 403, 404),
        tags=("users",),
        description="sys_admin only; ends the user's sessions.",
    ),
    # --- operations --------------------------------------------------------------------------------------------
    Route(
        "GET",
        "api/admin/log-level",
        "A service's log level",
        respond=log_level,
        access=BEARER,
        role=IsSysAdmin,
        query=s.LogLevelQuerySerializer,
        reply=s.LogLevelReplySerializer,
        errors=(400, 401, 403),
        name="log-level",
        tags=("admin",),
    ),
    Route(
        "POST",
        "api/admin/log-level",
        "Set a service's log level",
        respond=set_log_level,
        access=BEARER,
        role=IsSysAdmin,
        body=s.LogLevelSerializer,
        reply=s.LogLevelReplySerializer,
        errors=(400, 401, 403),
        tags=("admin",),
        description="Applies to every running instance of the service.",
    ),
    Route(
        "GET",
        "api/seed",
        "Seed every service (development only)",
        respond=seed,
        reply=s.SeedReplySerializer,
        errors=(404,),
        name="seed",
        tags=("admin",),
        description="Idempotent and never destructive; 404 unless SEED_OVER_HTTP is on.",
    ),
    Route(
        "GET",
        ".well-known/jwks.json",
        "The public signing keys (proxy of the auth service's JWKS)",
        respond=key_set,
        reply=s.JwksSerializer,
        cache_control=JWKS_CACHE_CONTROL,
        errors=(503,),
        upstream=False,
        lean=True,
        name="jwks",
        tags=("keys",),
    ),
    Route(
        "GET",
        ".well-known/openid-configuration",
        "OpenID Connect discovery document",
        respond=openid_configuration,
        reply=s.OpenIdConfigurationSerializer,
        cache_control=DISCOVERY_CACHE_CONTROL,
        upstream=False,
        name="openid-configuration",
        tags=("keys",),
        description="Where verifiers find the issuer, the signing keys (`jwks_uri`) and the token endpoint.",
    ),
    # --- second factors (SPEC §2b) -------------------------------------------------------------------------------
    Route(
        "POST",
        "api/login/mfa",
        "Finish a login with a second factor",
        m.LOGIN_MFA,
        body=mfa.LoginMfaSerializer,
        reply=s.AccessTokenSerializer,
        sets_tokens=True,
        throttle="login",
        errors=(400, 401, 429),
        name="login-mfa",
        tags=("identity",),
        description=(
            "The `mfaToken` of the login's answer with a TOTP `code` or a `recoveryCode`: answers as a login "
            "(access token, cookies). The token is single use, lives 5 minutes and allows 5 wrong codes; each "
            "wrong code also counts in the account's login failure budget."
        ),
    ),
    Route(
        "GET",
        "api/auth/mfa",
        "The caller's second factors",
        m.MFA_STATUS,
        access=BEARER,
        errors=(401,),
        name="mfa",
        title="Second Factors",
        tags=("mfa",),
    ),
    Route(
        "POST",
        "api/auth/mfa/totp/setup",
        "Start TOTP enrolment",
        m.TOTP_SETUP,
        access=BEARER,
        errors=(401, 403, 409),
        name="totp-setup",
        tags=("mfa",),
        description="A new secret, inactive until confirmed; replaces an unconfirmed one. 409 when TOTP is on.",
    ),
    Route(
        "POST",
        "api/auth/mfa/totp/confirm",
        "Confirm TOTP with a code",
        m.TOTP_CONFIRM,
        access=BEARER,
        body=mfa.TotpConfirmSerializer,
        errors=(400, 401, 403),
        name="totp-confirm",
        tags=("mfa",),
        description="A correct code turns TOTP on and answers 10 recovery codes, shown this once.",
    ),
    Route(
        "DELETE",
        "api/auth/mfa/totp",
        "Turn TOTP off",
        m.TOTP_DISABLE,
        access=BEARER,
        body=mfa.PasswordAndCodeSerializer,
        errors=(400, 401, 403, 409, 429),
        name="totp",
        tags=("mfa",),
        description="Needs the password and a TOTP or recovery code; removes TOTP and the recovery codes.",
    ),
    Route(
        "POST",
        "api/auth/mfa/recovery-codes",
        "New recovery codes",
        m.RECOVERY_CODES_REGENERATE,
        access=BEARER,
        body=mfa.PasswordAndCodeSerializer,
        errors=(400, 401, 403, 409, 429),
        name="recovery-codes",
        tags=("mfa",),
        description="Needs the password and a TOTP or recovery code; the earlier codes stop working.",
    ),
    Route(
        "DELETE",
        f"api/user/{USER_ID}/mfa",
        "Reset a user's second factors",
        m.MFA_RESET,
        access=BEARER,
        role=IsSysAdmin,
        args=(USER_ID,),
        errors=(400, 401, 403, 404),
        name="user-mfa",
        tags=("mfa",),
        description="sys_admin only (not on itself): removes every second factor and ends the user's sessions.",
    ),
]
