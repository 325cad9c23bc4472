"""Settings for testing `common` on its own: a database with the reusable apps, real Redis and NATS."""

from common.conf.settings import common_settings, drf_settings, outbox_settings, user_events_stream_settings

globals().update(common_settings("common", debug_default=False))
globals().update(outbox_settings())
globals().update(user_events_stream_settings(consumer="common_test"))

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "common.messaging",
    "common.outbox",
    "common.inbox",
]
MIDDLEWARE = ["common.api.middleware.RequestContextMiddleware"]
ROOT_URLCONF = "devstack.testing.urls"
NATS_HANDLERS_MODULE = "devstack.testing.handlers"
REST_FRAMEWORK = drf_settings()
