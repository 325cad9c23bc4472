"""Django app config of clients."""

from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "auth_service.clients"
    label = "clients"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Service accounts"
