"""Tests: like development, with secure cookies on (the test client can send them over http)."""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("COOKIE_SECURE", "true")
os.environ.setdefault("SEED_OVER_HTTP", "true")
os.environ.setdefault("LOG_JSON", "true")

from gateway.settings.base import *

# The suite logs in as the seeded accounts many times across runs; the per-account login limit is not under test
# there (a dedicated test lowers it with override_settings).
THROTTLE_RATES["login.account-source"] = "1000/10m"
