"""Auth service settings read from the environment."""

from django.core.exceptions import ImproperlyConfigured

from common.conf.env import REPO_ROOT, env, env_bool, env_float, env_int, env_list
from common.conf.settings import (
    CONSOLE_APPS,
    admin_console_settings,
    celery_settings,
    common_settings,
    console_middleware,
    drf_settings,
    outbox_settings,
    token_settings,
    user_events_stream_settings,
)

globals().update(common_settings("auth", debug_default=False))
globals().update(token_settings())
globals().update(celery_settings(redis_url=globals()["REDIS_URL"]))

INSTALLED_APPS = [*CONSOLE_APPS, "common.outbox", "auth_service.accounts", "auth_service.audit", "auth_service.clients"]

MIDDLEWARE = console_middleware("auth_service.audit.middleware.ClientContextMiddleware")

ROOT_URLCONF = "auth_service.urls"
WSGI_APPLICATION = "auth_service.wsgi.application"
NATS_HANDLERS_MODULE = "auth_service.handlers"
AUTH_USER_MODEL = "accounts.User"
# Admin console logins share the API login's failure budget and security log.
AUTHENTICATION_BACKENDS = ["auth_service.accounts.backends.AdminLoginBackend"]

globals().update(admin_console_settings("auth"))

REST_FRAMEWORK = drf_settings()

# argon2id (libsodium) at one of OWASP's equivalent minimum configurations, m=7 MiB, t=5, p=1 by default; hashes
# of other parameters (the former m=19 MiB, t=2) verify and are upgraded at the next login. PBKDF2 kept only to
# verify legacy hashes.
PASSWORD_HASHERS = [
    "auth_service.accounts.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
PASSWORD_ARGON2_MEMORY_KIB = env_int("PASSWORD_ARGON2_MEMORY_KIB", 7168)
PASSWORD_ARGON2_TIME_COST = env_int("PASSWORD_ARGON2_TIME_COST", 5)
# OWASP's Password Storage Cheat Sheet: m=47104/t=1, 19456/2, 12288/3, 9216/4, 7168/5 (KiB), p=1. Nothing weaker.
_OWASP_ARGON2ID_MINIMUMS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))
if not any(m <= PASSWORD_ARGON2_MEMORY_KIB and t <= PASSWORD_ARGON2_TIME_COST for m, t in _OWASP_ARGON2ID_MINIMUMS):
    raise ImproperlyConfigured("PASSWORD_ARGON2_MEMORY_KIB/TIME_COST are below OWASP's minimum Argon2id configurations")
# Concurrent argon2 hashes per process (each holds its memory cost): bounds memory and keeps latency predictable.
PASSWORD_HASH_CONCURRENCY = env_int("PASSWORD_HASH_CONCURRENCY", 2)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "auth_service.accounts.policies.OriginalPasswordRuleValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("username", "name", "email")},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "auth_service.accounts.policies.MaximumLengthValidator"},
]

# Refresh tokens: HS256 with their own secret (not SECRET_KEY, so it can be rotated on its own).
REFRESH_TOKEN_SECRET = env("REFRESH_TOKEN_SECRET", "dev-insecure-refresh-secret-change-me-0123456789")
REFRESH_REUSE_GRACE_SECONDS = env_int("REFRESH_REUSE_GRACE_SECONDS", 10)
VERIFICATION_CODE_TTL_SECONDS = env_int("VERIFICATION_CODE_TTL_SECONDS", 600)
VERIFICATION_CODE_MAX_ATTEMPTS = env_int("VERIFICATION_CODE_MAX_ATTEMPTS", 5)
# Code checks per account in a fixed window, across every code reissued in it (a resend does not reset it).
VERIFICATION_FAILURE_LIMIT = env_int("VERIFICATION_FAILURE_LIMIT", 10)
VERIFICATION_FAILURE_WINDOW_SECONDS = env_int("VERIFICATION_FAILURE_WINDOW_SECONDS", 3600)
RECOVERY_TOKEN_TTL_SECONDS = env_int("RECOVERY_TOKEN_TTL_SECONDS", 3600)
# recover-credentials takes at least this long, whether or not the account exists (no timing enumeration).
RECOVERY_MIN_DURATION_SECONDS = env_float("RECOVERY_MIN_DURATION_SECONDS", 0.25)
# Failed logins per account (id, or slug when unknown) and source (IPv4 address or IPv6 /64) in a fixed window; the
# window always expires. Past LOGIN_ACCOUNT_FAILURE_LIMIT failures from all sources, each source gets one per window.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 100)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
# Second factors (SPEC §2b): the login's mfaToken lives this long and allows this many wrong codes; wrong codes also
# count in the login failure budget above. TOTP_ISSUER names the service in authenticator apps.
MFA_TOKEN_TTL_SECONDS = env_int("MFA_TOKEN_TTL_SECONDS", 300)
MFA_TOKEN_MAX_FAILURES = env_int("MFA_TOKEN_MAX_FAILURES", 5)
TOTP_ISSUER = env("TOTP_ISSUER", "Authmesh")

# Signing keys: rotated on a schedule; a retired key stays published longer than an access token lives.
SIGNING_KEY_ROTATION_DAYS = env_int("SIGNING_KEY_ROTATION_DAYS", 30)
# Key-encryption keys of the secrets the auth service stores (auth_service/accounts/keyring.py): Fernet keys,
# comma-separated, newest first. The development default is published, so production requires its own.
KEY_ENCRYPTION_KEYS = env_list("KEY_ENCRYPTION_KEYS", ["ZGV2LWluc2VjdXJlLWtleS1lbmNyeXB0aW9uLWtleSE="])
SIGNING_KEY_PEM_PRIVATE = env("SIGNING_KEY_PEM_PRIVATE")  # path to certs/private.pem, optional
SIGNING_KEY_PEM_PUBLIC = env("SIGNING_KEY_PEM_PUBLIC")  # path to certs/public.pem, optional

# Mail: console + .eml files in development; SMTP by environment in production.
EMAIL_BACKEND = env("EMAIL_BACKEND", "auth_service.accounts.mail.DevMailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(REPO_ROOT / "var" / "mail"))
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Authmesh <no-reply@authmesh.local>")

# Security log: events older than this are deleted by the hourly `purge_expired`.
SECURITY_EVENT_RETENTION_DAYS = env_int("SECURITY_EVENT_RETENTION_DAYS", 90)

# Seeded accounts' password (SPEC §5).
SEED_PASSWORD = env("SEED_PASSWORD", "Password123!")

# Outbox relay: after every commit the bridge's in-process relay publishes at once (a Celery worker is asked to,
# from processes without one); beat runs the relay every few seconds as the safety net.
globals().update(outbox_settings(kick="auth_service.tasks.kick_relay"))
globals().update(user_events_stream_settings())

# The relay's period; the beat schedule itself is in auth_service/celery.py (its crontabs need Celery imported).
OUTBOX_RELAY_INTERVAL_SECONDS = env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 2)
