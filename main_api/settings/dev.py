"""Development: debug on, plain HTTP cookies, readable logs."""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("COOKIE_SECURE", "false")

from main_api.settings.base import *
