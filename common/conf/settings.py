"""Settings builders shared by the three projects; each project's settings/base.py starts from these."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from common.conf.env import (
    REPO_ROOT,
    database_settings,
    env,
    env_bool,
    env_float,
    env_int,
    env_list,
    service_database_url,
)
from common.conf.logging import logging_config
from common.conf.nats_trust import inbox_prefix
from common.conf.processes import GATEWAY


def common_settings(service: str, *, debug_default: bool) -> dict[str, Any]:
    """Settings every service shares: env-driven database, Redis cache, NATS, logging, DRF error envelope."""
    debug = env_bool("DJANGO_DEBUG", debug_default)
    redis_url = env("REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        "SERVICE_NAME": service,
        "BASE_DIR": REPO_ROOT,
        "DEBUG": debug,
        "SECRET_KEY": env("SECRET_KEY", "dev-insecure-secret-key-change-me-0123456789abcdef"),
        "ALLOWED_HOSTS": env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"]),
        "DATABASES": {
            "default": database_settings(service_database_url(service), conn_max_age=env_int("DB_CONN_MAX_AGE", 600))
        },
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "LANGUAGE_CODE": "en-us",
        "USE_I18N": False,
        "STATIC_URL": "/static/",
        # Where collectstatic puts files and the HTTP server serves them from; a test stack uses a dir of its own.
        "STATIC_ROOT": env("STATIC_ROOT") or str(REPO_ROOT / "var" / "static" / service),
        "REDIS_URL": redis_url,
        "CACHES": {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url,
                "OPTIONS": {
                    "CLIENT_CLASS": "django_redis.client.DefaultClient",
                    "SOCKET_CONNECT_TIMEOUT": 2,
                    "SOCKET_TIMEOUT": 2,
                },
                "KEY_PREFIX": service,
            }
        },
        "NATS_URL": env("NATS_URL", "nats://127.0.0.1:4222"),
        # This process's NATS identity (SPEC §4b; common/conf/nats_trust.py): an NKEY seed, usually from a file
        # (NATS_NKEY_SEED_FILE, a secret). None connects anonymously, which a server with authorization refuses.
        "NATS_NKEY_SEED": env("NATS_NKEY_SEED"),
        # Replies come back under the service's own prefix: the only inbox its identities may read.
        "NATS_INBOX_PREFIX": inbox_prefix(service),
        "NATS_REQUEST_TIMEOUT": env_float("NATS_REQUEST_TIMEOUT", 5.0),
        "NATS_BRIDGE_WORKERS": env_int("NATS_BRIDGE_WORKERS", 8),
        "LOGGING": logging_config(
            service=service,
            json=env_bool("LOG_JSON", not debug),
            level=env("LOG_LEVEL", "INFO") or "INFO",
        ),
        # The other services whose bridges readiness asks over NATS (the gateway's), and the Content-Security-Policy
        # of HTML answers (common/api/csp.py; none unless a project sets one).
        "READINESS_SERVICES": [],
        "SECURE_CSP": {},
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
        "DATA_UPLOAD_MAX_MEMORY_SIZE": env_int("MAX_BODY_BYTES", 1024 * 1024),
        # POSTs to a Django admin login form per client (IPv4 address or IPv6 /64): AdminLoginThrottleMiddleware.
        "ADMIN_LOGIN_RATE": env("ADMIN_LOGIN_RATE", "50/10m"),
    }


# The apps of a service with a Django admin console (auth_service, main_api); each adds its own after these.
CONSOLE_APPS = (
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "common.messaging",
)


def console_middleware(*after_request_context: str) -> list[str]:
    """The middleware of a service with an admin console; `after_request_context` runs right after the request id
    is set (the auth service records the caller's address for its security log there)."""
    return [
        "common.api.middleware.RequestContextMiddleware",
        *after_request_context,
        # The admin login's per-IP limit, before Django's login view runs.
        "common.api.admin_throttle.AdminLoginThrottleMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]


def admin_console_settings(service: str) -> dict[str, Any]:
    """A service's Django admin: templates, sessions in the cache (Redis), and cookies of its own."""
    secure = env_bool("COOKIE_SECURE", True)
    return {
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [],
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
        "SESSION_COOKIE_SECURE": secure,
        "CSRF_COOKIE_SECURE": secure,
        # Cookies ignore ports: on one development host (:8000-8002) each admin needs names of its own, or logging
        # in to one logs the browser out of the other.
        "SESSION_COOKIE_NAME": f"{service}_sessionid",
        "CSRF_COOKIE_NAME": f"{service}_csrftoken",
    }


def drf_settings(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "EXCEPTION_HANDLER": "common.api.exceptions.exception_handler",
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "UNAUTHENTICATED_USER": None,
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": ["common.api.parsers.JSONParser"],
    }
    base.update(overrides)
    return base


def celery_settings(*, redis_url: str) -> dict[str, Any]:
    broker = env("CELERY_BROKER_URL") or _redis_db(redis_url, 1)
    return {
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": None,
        "CELERY_TASK_IGNORE_RESULT": True,
        "CELERY_TASK_ACKS_LATE": True,
        "CELERY_TASK_REJECT_ON_WORKER_LOST": True,
        "CELERY_WORKER_PREFETCH_MULTIPLIER": 1,
        "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
        "CELERY_TASK_ALWAYS_EAGER": env_bool("CELERY_TASK_ALWAYS_EAGER", False),
    }


def _redis_db(url: str, db: int) -> str:
    head, _, tail = url.rpartition("/")
    if tail.isdigit() and head.count("/") >= 2:
        return f"{head}/{db}"
    return f"{url.rstrip('/')}/{db}"


def token_settings() -> dict[str, Any]:
    """Token parameters both the issuer (auth service) and the verifier (gateway) must agree on.

    The issuer is the gateway's public base URL (OpenID Connect Discovery: the discovery document lives under it and
    names it as `issuer`, which must equal the tokens' `iss`); JWT_ISSUER still overrides it.
    """
    public_url = public_base_url(env("GATEWAY_PUBLIC_URL", "http://127.0.0.1:8000") or "")
    return {
        "GATEWAY_PUBLIC_URL": public_url,
        "JWT_ISSUER": env("JWT_ISSUER", public_url),
        "JWT_AUDIENCE": env("JWT_AUDIENCE", "authmesh-api"),
        "ACCESS_TOKEN_TTL_SECONDS": env_int("ACCESS_TOKEN_TTL_SECONDS", 15 * 60),
        "REFRESH_TOKEN_TTL_SECONDS": env_int("REFRESH_TOKEN_TTL_SECONDS", 7 * 24 * 3600),
    }


def public_base_url(value: str) -> str:
    """GATEWAY_PUBLIC_URL checked and without its trailing slash: an http(s) URL with a host, no query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ImproperlyConfigured(f"GATEWAY_PUBLIC_URL must be an http(s) base URL, got {value!r}.")
    return value.rstrip("/")


def cors_settings() -> dict[str, Any]:
    """CORS at the gateway (django-cors-headers, SPEC §2c): only the listed browser origins, with credentials.

    Credentials go with an exact origin only, so a wildcard (or the `null` origin of sandboxed frames and files)
    is refused here rather than left to a system check that the HTTP server never runs.
    """
    origins = env_list("CORS_ALLOWED_ORIGINS", [])
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or origin != f"{parts.scheme}://{parts.netloc}":
            raise ImproperlyConfigured(f"CORS_ALLOWED_ORIGINS takes origins like https://app.example, got {origin!r}.")
    return {
        "CORS_ALLOWED_ORIGINS": origins,
        "CORS_ALLOW_CREDENTIALS": True,
        # The API, its document and the keys; not the HTML pages or the health probes.
        "CORS_URLS_REGEX": r"^/(api|\.well-known)/",
        # What a browser client sends: JSON with a bearer token, the CSRF header (the echo of the CSRF cookie) and
        # optionally its own request id.
        "CORS_ALLOW_HEADERS": ("accept", "authorization", "content-type", "user-agent", "x-csrf-token", "x-request-id"),
        # Response headers a browser script may read besides the safelisted ones.
        # x-csrf-token: login and refresh answer the new CSRF token in it, for a front end that cannot read the
        # gateway's cookie.
        "CORS_EXPOSE_HEADERS": ["retry-after", "x-request-id", "x-csrf-token"],
        "CORS_PREFLIGHT_MAX_AGE": env_int("CORS_PREFLIGHT_MAX_AGE", 600),
    }


def webauthn_settings() -> dict[str, Any]:
    """Passkeys (SPEC §2b): the relying party the credentials are bound to, and the origins allowed to use them.

    Browsers refuse an IP address as a relying-party id, so development uses `localhost`; the gateway's origins on
    both loopback names are listed (a page on 127.0.0.1 can still use a credential registered elsewhere, never
    create one for `localhost`). Production sets its own domain and HTTPS origin(s).
    """
    port = GATEWAY.port
    return {
        "WEBAUTHN_RP_ID": env("WEBAUTHN_RP_ID", "localhost"),
        "WEBAUTHN_RP_NAME": env("WEBAUTHN_RP_NAME", "Authmesh"),
        "WEBAUTHN_ORIGINS": env_list("WEBAUTHN_ORIGINS", [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]),
        # A ceremony's challenge lives this long in Redis and is good for one verification.
        "WEBAUTHN_CHALLENGE_TTL_SECONDS": env_int("WEBAUTHN_CHALLENGE_TTL_SECONDS", 300),
    }


def user_events_stream_settings(*, consumer: str | None = None) -> dict[str, Any]:
    """The identity-events stream, read the same way by its producer (auth) and its consumer (main_api), and for a
    consumer (`consumer`: its durable's default name) how it pulls, acks and retries.

    Both may run `provision_streams`; identical settings keep them from overwriting each other's stream config.
    """
    return {
        **(_user_events_consumer_settings(consumer) if consumer else {"USER_EVENTS_DURABLE": None}),
        "USER_EVENTS_STREAM": env("USER_EVENTS_STREAM", "USERS"),
        "USER_EVENTS_SUBJECT_PREFIX": env("USER_EVENTS_SUBJECT_PREFIX", "auth.user"),
        "USER_EVENTS_MAX_AGE_SECONDS": env_float("USER_EVENTS_MAX_AGE_SECONDS", 30 * 24 * 3600.0),
        "USER_EVENTS_DUPLICATE_WINDOW_SECONDS": env_float("USER_EVENTS_DUPLICATE_WINDOW_SECONDS", 120.0),
        # 3 on a clustered JetStream (the scale profile): the stream then survives the loss of one server.
        "USER_EVENTS_REPLICAS": env_int("USER_EVENTS_REPLICAS", 1),
    }


def _user_events_consumer_settings(durable: str) -> dict[str, Any]:
    return {
        "USER_EVENTS_DURABLE": env("USER_EVENTS_DURABLE", durable),
        "USER_EVENTS_MAX_DELIVER": env_int("USER_EVENTS_MAX_DELIVER", 5),
        "USER_EVENTS_ACK_WAIT_SECONDS": env_float("USER_EVENTS_ACK_WAIT_SECONDS", 30.0),
        # Server-side redelivery of unacked messages (a consumer died holding them); unset: ack wait doubled per
        # delivery.
        "USER_EVENTS_BACKOFF_SECONDS": [float(v) for v in env_list("USER_EVENTS_BACKOFF_SECONDS")] or None,
        "USER_EVENTS_MAX_ACK_PENDING": env_int("USER_EVENTS_MAX_ACK_PENDING", 1000),
        "USER_EVENTS_BATCH": env_int("USER_EVENTS_BATCH", 100),
        "USER_EVENTS_FETCH_TIMEOUT_SECONDS": env_float("USER_EVENTS_FETCH_TIMEOUT_SECONDS", 1.0),
        # Delay before a failed message is delivered again: base doubled per delivery, capped.
        "USER_EVENTS_RETRY_BASE_SECONDS": env_float("USER_EVENTS_RETRY_BASE_SECONDS", 1.0),
        "USER_EVENTS_RETRY_MAX_SECONDS": env_float("USER_EVENTS_RETRY_MAX_SECONDS", 60.0),
    }


def outbox_settings(*, kick: str | None = None) -> dict[str, Any]:
    """How the relay claims, publishes and retries outbox rows; `kick`: the function that wakes a relay after a
    commit."""
    return {
        "OUTBOX_KICK": kick,
        # The bridge's in-process relay (on by default). Off, commits ask a Celery worker instead, so the worker and
        # beat are the only relay (the outage tests stop it to prove the outbox holds events meanwhile).
        "OUTBOX_LOCAL_RELAY": env_bool("OUTBOX_LOCAL_RELAY", True),
        # How often the bridge's in-process relay looks for pending rows when no commit woke it.
        "OUTBOX_LOCAL_RELAY_IDLE_SECONDS": env_float("OUTBOX_LOCAL_RELAY_IDLE_SECONDS", 5.0),
        "OUTBOX_BATCH_SIZE": env_int("OUTBOX_BATCH_SIZE", 500),
        "OUTBOX_LEASE_SECONDS": env_float("OUTBOX_LEASE_SECONDS", 30.0),
        "OUTBOX_ACK_TIMEOUT_SECONDS": env_float("OUTBOX_ACK_TIMEOUT_SECONDS", 5.0),
        "OUTBOX_RETRY_BASE_SECONDS": env_float("OUTBOX_RETRY_BASE_SECONDS", 1.0),
        "OUTBOX_RETRY_MAX_SECONDS": env_float("OUTBOX_RETRY_MAX_SECONDS", 300.0),
    }
