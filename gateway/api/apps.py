"""Django app config of the public API."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "gateway.api"
    label = "api"

    def ready(self) -> None:
        # Registers the OpenAPI extension that documents AccessTokenAuthentication as a bearer scheme.
        from gateway.api import schema  # noqa: F401
