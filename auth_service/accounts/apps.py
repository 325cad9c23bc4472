"""Django app config of accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "auth_service.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: this module is loaded while the app registry is being populated, before the models the
        # services import can be.
        from auth_service.accounts.models import UserManager
        from auth_service.accounts.services.users import user_provision

        # createsuperuser (and any tool calling User.objects.create_user) creates through the service.
        UserManager.provision = user_provision
