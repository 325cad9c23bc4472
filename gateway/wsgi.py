"""WSGI entry point of gateway (served by granian in development and production)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.dev")

application = get_wsgi_application()
