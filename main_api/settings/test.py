"""Tests: JSON logs."""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("LOG_JSON", "true")

from main_api.settings.base import *
