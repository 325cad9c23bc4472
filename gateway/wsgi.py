"""WSGI entry point of gateway (served by granian in development and production)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.dev")

django_application = get_wsgi_application()

# The hot read routes are answered in front of Django's handler (gateway/api/fastlane.py); the rest go to it.
from gateway.api.fastlane import LeanFront  # noqa: E402 - needs the settings and apps loaded above

application = LeanFront(django_application)

from common.conf.process import freeze_startup_objects  # noqa: E402 - last: everything start-up made is built

freeze_startup_objects()
