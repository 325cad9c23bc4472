"""WSGI entry point of auth_service (served by granian in development and production)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth_service.settings.dev")

application = get_wsgi_application()
