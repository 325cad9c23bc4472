"""Celery app of the auth service: outbox relay, mail, key rotation and clean-up."""

import os

from celery import Celery

from common.conf.beat import add_beat_thread_option

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_service.settings.dev")

app = Celery("auth_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["auth_service"], related_name="tasks", force=True)
# `worker --beat-thread`: the one worker that also schedules the periodic tasks (see common/conf/beat.py).
add_beat_thread_option(app)
