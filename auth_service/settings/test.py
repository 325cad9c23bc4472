"""Tests: JSON logs, mail kept in memory by the locmem backend unless a test overrides it."""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("LOG_JSON", "true")

from auth_service.settings.base import *

# Mail in django.core.mail.outbox, tasks run inline (after commit, like in production).
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
# Bridge worker threads open their own connections: close them after each request so none outlives a test.
DATABASES["default"]["CONN_MAX_AGE"] = 0
