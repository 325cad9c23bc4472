"""main_api settings read from the environment."""

from common.conf.env import env_bool, env_float, env_int
from common.conf.settings import common_settings, drf_settings

globals().update(common_settings("main", debug_default=False))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "common.messaging",
    "common.inbox",
    "main_api.users",
]

MIDDLEWARE = [
    "common.api.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "main_api.urls"
WSGI_APPLICATION = "main_api.wsgi.application"
NATS_HANDLERS_MODULE = "main_api.handlers"

TEMPLATES = [
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
]

REST_FRAMEWORK = drf_settings()
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_COOKIE_SECURE = env_bool("COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("COOKIE_SECURE", True)

# JetStream consumer of identity events.
USER_EVENTS_DURABLE = "main_api_users"
USER_EVENTS_MAX_DELIVER = env_int("USER_EVENTS_MAX_DELIVER", 5)
USER_EVENTS_ACK_WAIT_SECONDS = env_float("USER_EVENTS_ACK_WAIT_SECONDS", 30.0)
USER_EVENTS_BATCH = env_int("USER_EVENTS_BATCH", 100)
