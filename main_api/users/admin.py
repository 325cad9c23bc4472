"""Admin of the users read model: read-only, since only the auth service's events may change it."""

from __future__ import annotations

from django.contrib import admin

from common.admin import ReadOnlyAdmin
from main_api.users.models import User


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    list_display = (
        "username",
        "name",
        "email",
        "roles",
        "is_active",
        "is_verified",
        "is_deleted",
        "created_at",
        "version",
    )
    list_filter = ("is_active", "is_verified", "is_deleted")
    search_fields = ("username", "name", "email", "=id")
    ordering = ("created_at", "id")
    list_per_page = 50
    show_full_result_count = False  # one COUNT per page is enough on a large table
