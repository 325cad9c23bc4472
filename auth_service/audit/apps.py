"""Django app config of the security event log."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "auth_service.audit"
    label = "audit"
    verbose_name = "Security log"
    default_auto_field = "django.db.models.BigAutoField"
