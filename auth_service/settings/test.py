"""Tests: JSON logs, mail kept in memory by the locmem backend unless a test overrides it."""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("LOG_JSON", "true")

from auth_service.settings.base import *  # noqa: E402,F403
