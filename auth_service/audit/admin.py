"""Admin of the security log: read-only, filtered by kind, outcome and date (sys_admin only, by its permissions)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from auth_service.audit.models import SecurityEvent
from auth_service.audit.selectors import security_event_search
from common.admin import ReadOnlyAdmin


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "outcome", "reason", "user_id", "actor_id", "ip", "request_id"]
    list_filter = ["kind", "outcome", ("created_at", admin.DateFieldListFilter)]
    date_hierarchy = "created_at"
    # Shown as the search box's hint; the search itself is get_search_results below.
    search_fields = ["user_id", "actor_id", "ip", "request_id"]
    search_help_text = "A user or actor id, an IP, a request id, or the e-mail/username tried for an unknown account."
    ordering = ["-created_at", "-id"]
    list_per_page = 100
    show_full_result_count = False  # one COUNT per page is enough on a large table
    readonly_fields = fields = (
        "created_at",
        "kind",
        "outcome",
        "reason",
        "user_id",
        "actor_id",
        "identifier_digest",
        "ip",
        "user_agent",
        "request_id",
        "detail",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[SecurityEvent], search_term: str
    ) -> tuple[QuerySet[SecurityEvent], bool]:
        return security_event_search(queryset, search_term), False
