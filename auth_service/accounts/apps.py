"""Django app config of accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "auth_service.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
