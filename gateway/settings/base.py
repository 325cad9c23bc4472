"""Gateway settings read from the environment. No database: sessions live in Redis, data behind NATS."""

from common.conf.env import env_bool, env_int, env_list
from common.conf.settings import common_settings, drf_settings, token_settings

globals().update(common_settings("gateway", debug_default=False))
globals().update(token_settings())

DATABASES: dict[str, dict[str, object]] = {}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "common.messaging",
    "gateway.api",
]

MIDDLEWARE = [
    "common.api.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "gateway.urls"
WSGI_APPLICATION = "gateway.wsgi.application"
NATS_HANDLERS_MODULE = "gateway.handlers"
READINESS_SERVICES = ["auth", "main"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

REST_FRAMEWORK = drf_settings(
    DEFAULT_AUTHENTICATION_CLASSES=["gateway.api.authentication.AccessTokenAuthentication"],
    DEFAULT_SCHEMA_CLASS="drf_spectacular.openapi.AutoSchema",
)

SPECTACULAR_SETTINGS = {
    "TITLE": "Authmesh API",
    "DESCRIPTION": "Authentication for microservices: sign-up, verification, login, refresh, users and roles.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Cookies: Secure by default; plain-HTTP development turns it off.
COOKIE_SECURE = env_bool("COOKIE_SECURE", True)
# Seeding over HTTP: development only, never destructive.
SEED_OVER_HTTP = env_bool("SEED_OVER_HTTP", False)
# Proxies whose X-Forwarded-For we trust (count of hops); 0 = use REMOTE_ADDR.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
