"""Django admin helpers shared by the services' consoles."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A model the console shows but never adds, edits or deletes (writes go through the services)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IsSetFilter(admin.SimpleListFilter):
    """A list filter on whether the nullable field `field` (a timestamp) is set: choice `unset` lists the rows where
    it is null, choice `is_set` those where it holds a value; each choice is (its query value, its label)."""

    field: str
    unset: tuple[str, str]
    is_set: tuple[str, str]

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [self.unset, self.is_set]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == self.unset[0]:
            return queryset.filter(**{f"{self.field}__isnull": True})
        if self.value() == self.is_set[0]:
            return queryset.filter(**{f"{self.field}__isnull": False})
        return queryset
