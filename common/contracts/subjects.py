"""NATS subject names. Request/reply subjects keep the original's names where it had them."""

from __future__ import annotations

# Queue groups: one per service, so every instance of a service shares the load.
QUEUE_AUTH = "auth"
QUEUE_MAIN = "main"
QUEUE_GATEWAY = "gateway"

# auth service: identity flows (request/reply).
AUTH_SIGNUP = "auth.signup.user"
AUTH_VERIFY_ACCOUNT = "auth.verify.account"
AUTH_RESEND_VERIFICATION = "auth.resend.verification"
AUTH_LOGIN = "auth.login.user"
AUTH_REVALIDATE = "auth.revalidate.credentials"
AUTH_LOGOUT = "auth.logout.user"
AUTH_SESSIONS_LIST = "auth.sessions.list"
AUTH_SESSIONS_END = "auth.sessions.end"
AUTH_RECOVER = "auth.recover.credentials"
AUTH_RESET_PASSWORD = "auth.reset.password"  # noqa: S105 - a subject name
AUTH_DENY_ACCESS = "auth.deny.access"
AUTH_JWKS = "auth.jwks.get"
# OAuth 2.0 client credentials: a service account exchanges its id and secret for an access token.
AUTH_OAUTH_TOKEN = "auth.oauth.token"  # noqa: S105 - a subject name

# auth service: second factors (SPEC §2b).
AUTH_LOGIN_MFA = "auth.login.mfa"
AUTH_MFA_STATUS = "auth.mfa.status"
AUTH_TOTP_SETUP = "auth.mfa.totp.setup"
AUTH_TOTP_CONFIRM = "auth.mfa.totp.confirm"
AUTH_TOTP_DISABLE = "auth.mfa.totp.disable"
AUTH_RECOVERY_CODES_REGENERATE = "auth.mfa.recovery-codes.regenerate"
AUTH_MFA_RESET = "auth.mfa.reset"

# auth service: user management writes (the single writer of identity). Deliberately outside `auth.user.>`,
# the events stream's subjects: JetStream would otherwise store these requests (passwords included) and ack them.
AUTH_USER_CREATE = "auth.users.create"
AUTH_USER_UPDATE = "auth.users.update"
AUTH_USER_DEACTIVATE = "auth.users.deactivate"
AUTH_USER_DELETE = "auth.users.delete"

# main_api: the users read model.
USER_FIND_ALL = "user.find.all"
USER_FIND_ONE = "user.find.one"

# Seeding over HTTP (development only).
AUTH_SEED = "auth.seed"
MAIN_SEED = "main.seed"


def health(service: str) -> str:
    """Each bridge answers this subject so the gateway's readiness can see it."""
    return f"health.{service}"


def log_level_set(service: str) -> str:
    """Broadcast (no queue group): every running instance of the service applies it."""
    return f"ops.log-level.set.{service}"


def log_level_get(service: str) -> str:
    return f"ops.log-level.get.{service}"


# Broadcast (no queue group) by `manage_auth.py revoke_key`: every gateway drops the signing key from its cache.
JWKS_KEY_REVOKED = "ops.jwks.revoked"


# JetStream: identity events.
STREAM_USERS = "USERS"
USER_EVENTS = "auth.user.>"
