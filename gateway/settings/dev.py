"""Development: debug on, plain HTTP cookies, readable logs, HTTP seeding enabled."""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("COOKIE_SECURE", "false")
os.environ.setdefault("SEED_OVER_HTTP", "true")

from gateway.settings.base import *
