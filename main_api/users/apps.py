"""Django app config of the users read model."""

from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "main_api.users"
    label = "users"
    default_auto_field = "django.db.models.BigAutoField"
