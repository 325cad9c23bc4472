"""The auth service's Celery app: its beat schedule, and the processes that load it only when they enqueue a task."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.schedules import crontab

from auth_service.celery import app

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_beat_schedules_the_relay_the_key_rotation_and_the_purge(settings: Any) -> None:
    schedule = app.conf.beat_schedule
    assert schedule["relay-outbox"] == {
        "task": "auth_service.tasks.relay_outbox",
        "schedule": timedelta(seconds=settings.OUTBOX_RELAY_INTERVAL_SECONDS),
    }
    assert schedule["rotate-signing-keys"]["schedule"] == crontab(minute=0, hour=3)
    assert schedule["purge-expired"]["schedule"] == crontab(minute=15)
    assert set(schedule) == {"relay-outbox", "rotate-signing-keys", "purge-expired"}
    assert all(entry["task"] in app.tasks for entry in schedule.values())


_PROBE = """
import sys
import django
django.setup()
from django.core.management import load_command_class
load_command_class("common.messaging", "nats_bridge")
import auth_service.handlers, auth_service.urls
print("celery" in sys.modules, "kombu" in sys.modules)
from auth_service.tasks import send_mail  # what the first mail or outbox kick imports
print("celery" in sys.modules, send_mail.app is sys.modules["auth_service.celery"].app)
"""


def test_the_bridge_and_the_http_process_load_celery_only_to_enqueue() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "auth_service.settings.test"}
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.split("\n")[:2] == ["False False", "True True"]
