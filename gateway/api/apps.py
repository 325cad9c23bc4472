"""Django app config of the public API."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "gateway.api"
    label = "api"
