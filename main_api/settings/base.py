"""main_api settings read from the environment."""

from common.conf.env import env, env_bool
from common.conf.settings import (
    CONSOLE_APPS,
    admin_console_settings,
    common_settings,
    console_middleware,
    drf_settings,
    user_events_stream_settings,
)

globals().update(common_settings("main", debug_default=False))

INSTALLED_APPS = [*CONSOLE_APPS, "common.inbox", "main_api.users"]

MIDDLEWARE = console_middleware()

ROOT_URLCONF = "main_api.urls"
WSGI_APPLICATION = "main_api.wsgi.application"
NATS_HANDLERS_MODULE = "main_api.handlers"

globals().update(admin_console_settings("main"))

REST_FRAMEWORK = drf_settings()

# Identity events: the stream (created or updated by `provision_streams`; the auth service reads the same names)
# and main_api's durable pull consumer of it. Tests give each run its own stream, prefix and durable.
globals().update(user_events_stream_settings(consumer="main_api_users"))

# A staff account for main_api's own admin, created by `seed` in development only (never changed once there).
SEED_ADMIN_ACCOUNT = env_bool("SEED_ADMIN_ACCOUNT", globals()["DEBUG"])
SEED_ADMIN_USERNAME = env("SEED_ADMIN_USERNAME", "sysadmin")
SEED_PASSWORD = env("SEED_PASSWORD", "Password123!")
