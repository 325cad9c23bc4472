"""Celery app of the auth service: outbox relay, mail, key rotation and clean-up."""

import os
from datetime import timedelta

from celery import Celery
from celery.schedules import crontab
from django.conf import settings

from common.conf.beat import add_beat_thread_option

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_service.settings.dev")

app = Celery("auth_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["auth_service"], related_name="tasks", force=True)
# Here rather than in the settings (CELERY_BEAT_SCHEDULE): crontab needs Celery imported, and the settings are also
# loaded by the processes that never schedule nor run a task (the HTTP server, the bridge until it enqueues one).
app.conf.beat_schedule = {
    "relay-outbox": {
        "task": "auth_service.tasks.relay_outbox",
        "schedule": timedelta(seconds=settings.OUTBOX_RELAY_INTERVAL_SECONDS),
    },
    "rotate-signing-keys": {"task": "auth_service.tasks.rotate_signing_keys", "schedule": crontab(minute=0, hour=3)},
    "purge-expired": {"task": "auth_service.tasks.purge_expired", "schedule": crontab(minute=15)},
}
# `worker --beat-thread`: the one worker that also schedules the periodic tasks (see common/conf/beat.py).
add_beat_thread_option(app)
