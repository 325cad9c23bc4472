"""Admin of the inbox: applied messages (read-only) and dead letters, which an operator can retry."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from common.admin import IsSetFilter, ReadOnlyAdmin
from common.inbox.consumer import consumer_named
from common.inbox.models import DeadLetter, InboxMessage
from common.inbox.services import dead_letter_retry


@admin.register(InboxMessage)
class InboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("message_id", "subject", "processed_at")
    list_filter = ("subject",)
    search_fields = ("=message_id",)
    date_hierarchy = "processed_at"
    show_full_result_count = False


class ResolvedFilter(IsSetFilter):
    title = "state"
    parameter_name = "state"
    field = "resolved_at"
    unset = ("open", "Open")
    is_set = ("resolved", "Resolved")


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = (
        "message_id",
        "subject",
        "consumer",
        "deliveries",
        "created_at",
        "retries",
        "retried_at",
        "resolved_at",
    )
    list_filter = (ResolvedFilter, "consumer", "subject")
    search_fields = ("=message_id", "error")
    readonly_fields = (
        "message_id",
        "subject",
        "consumer",
        "stream_sequence",
        "deliveries",
        "error",
        "payload",
        "headers",
        "created_at",
        "retries",
        "retried_at",
        "resolved_at",
    )
    actions = ("retry",)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # The form stays read-only for everyone; retrying takes the model's real change permission.
        return admin.ModelAdmin.has_change_permission(self, request)

    @admin.action(
        description="Retry: apply the selected messages again (same handler, same message id)",
        permissions=["retry"],
    )
    def retry(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        applied = 0
        for letter in queryset.filter(resolved_at__isnull=True).order_by("created_at"):
            consumer = consumer_named(letter.consumer)
            if consumer is None:
                self.message_user(
                    request, f"{letter.message_id}: no consumer named {letter.consumer!r} here", messages.ERROR
                )
                continue
            result = dead_letter_retry(letter=letter, handler=consumer.handler)
            if result.is_applied:
                applied += 1
            else:
                self.message_user(request, f"{letter.message_id}: still failing: {result.error}", messages.WARNING)
        self.message_user(request, f"{applied} message(s) applied.", messages.SUCCESS if applied else messages.INFO)
