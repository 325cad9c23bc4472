"""Django app config of the public API."""

from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class ApiConfig(AppConfig):
    name = "gateway.api"
    label = "api"

    def ready(self) -> None:
        # Imported here, once the app registry is ready (these modules import DRF's, which import models).
        # `schema` registers the OpenAPI extension that documents AccessTokenAuthentication as a bearer scheme.
        from gateway.api import schema  # noqa: F401
        from gateway.api.routing import table

        # The routes the gateway serves: SPEC §2's, then those of any module a deployment adds.
        for module in settings.GATEWAY_ROUTE_MODULES:
            table.register(*import_module(module).ROUTES)
