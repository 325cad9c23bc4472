"""main_api settings read from the environment."""

from common.conf.env import env, env_bool, env_float, env_int, env_list
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
globals().update(user_events_stream_settings())
USER_EVENTS_DURABLE = env("USER_EVENTS_DURABLE", "main_api_users")
USER_EVENTS_MAX_DELIVER = env_int("USER_EVENTS_MAX_DELIVER", 5)
USER_EVENTS_ACK_WAIT_SECONDS = env_float("USER_EVENTS_ACK_WAIT_SECONDS", 30.0)
# Server-side redelivery of unacked messages (a consumer died holding them); unset: ack wait doubled per delivery.
USER_EVENTS_BACKOFF_SECONDS = [float(v) for v in env_list("USER_EVENTS_BACKOFF_SECONDS")] or None
USER_EVENTS_MAX_ACK_PENDING = env_int("USER_EVENTS_MAX_ACK_PENDING", 1000)
USER_EVENTS_BATCH = env_int("USER_EVENTS_BATCH", 100)
USER_EVENTS_FETCH_TIMEOUT_SECONDS = env_float("USER_EVENTS_FETCH_TIMEOUT_SECONDS", 1.0)
# Delay before a failed message is delivered again: base doubled per delivery, capped.
USER_EVENTS_RETRY_BASE_SECONDS = env_float("USER_EVENTS_RETRY_BASE_SECONDS", 1.0)
USER_EVENTS_RETRY_MAX_SECONDS = env_float("USER_EVENTS_RETRY_MAX_SECONDS", 60.0)

# A staff account for main_api's own admin, created by `seed` in development only (never changed once there).
SEED_ADMIN_ACCOUNT = env_bool("SEED_ADMIN_ACCOUNT", globals()["DEBUG"])
SEED_ADMIN_USERNAME = env("SEED_ADMIN_USERNAME", "sysadmin")
SEED_PASSWORD = env("SEED_PASSWORD", "Password123!")
