"""Admin of service accounts (sys_admin): list, search, disable, enable, rotate the secret; all through the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from auth_service.clients import services
from auth_service.clients.models import ServiceClient
from auth_service.clients.selectors import service_client_search
from common.admin import ReadOnlyAdmin


@admin.register(ServiceClient)
class ServiceClientAdmin(ReadOnlyAdmin):
    list_display = ["name", "client_id", "scope_list", "is_active", "created_at", "secret_rotated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "client_id"]
    search_help_text = "A name (or part of one), or an exact client_id."
    # The secret's digest never leaves the database through the admin.
    fields = readonly_fields = ("client_id", "name", "scopes", "is_active", "epoch", "created_at", "secret_rotated_at")
    actions = ["disable", "enable", "rotate_secret"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ServiceClient) -> str:
        return " ".join(obj.scopes)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ServiceClient], search_term: str
    ) -> tuple[QuerySet[ServiceClient], bool]:
        return service_client_search(queryset, search_term), False

    @admin.action(description="Disable (their tokens are refused at once)")
    def disable(self, request: HttpRequest, queryset: QuerySet[ServiceClient]) -> None:
        for client in queryset:
            services.client_disable(client_id=client.client_id, actor_id=str(request.user.pk))
        self.message_user(request, f"Disabled {queryset.count()} service account(s).", messages.SUCCESS)

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[ServiceClient]) -> None:
        for client in queryset:
            services.client_enable(client_id=client.client_id, actor_id=str(request.user.pk))
        self.message_user(request, f"Enabled {queryset.count()} service account(s).", messages.SUCCESS)

    @admin.action(description="Rotate the secret (shown once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[ServiceClient]) -> TemplateResponse:
        rotated = [
            services.client_secret_rotate(client_id=client.client_id, actor_id=str(request.user.pk))
            for client in queryset
        ]
        response = TemplateResponse(
            request,
            "admin/clients/serviceclient/new_secret.html",
            {**self.admin_site.each_context(request), "opts": self.opts, "rotated": rotated, "title": "New secret"},
        )
        response["Cache-Control"] = "no-store"
        return response
