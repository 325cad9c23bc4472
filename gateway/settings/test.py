"""Tests: like development, with secure cookies on (the test client can send them over http)."""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("COOKIE_SECURE", "true")
os.environ.setdefault("SEED_OVER_HTTP", "true")
os.environ.setdefault("LOG_JSON", "true")

from gateway.settings.base import *  # noqa: E402,F403
