"""Reads of service accounts."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from auth_service.clients.models import ServiceClient
from auth_service.clients.policies import CLIENT_ID_MAX_LENGTH


def service_client_get(client_id: str) -> ServiceClient | None:
    if not client_id or len(client_id) > CLIENT_ID_MAX_LENGTH:
        return None
    return ServiceClient.objects.filter(client_id=client_id).first()


def service_client_is_current(client_id: str, *, epoch: int) -> bool:
    """The client is still enabled and at `epoch` (nothing rotated or disabled it meanwhile)."""
    return ServiceClient.objects.filter(client_id=client_id, epoch=epoch, is_active=True).exists()


def service_client_search(queryset: QuerySet[ServiceClient], term: str) -> QuerySet[ServiceClient]:
    term = term.strip()
    if not term:
        return queryset
    return queryset.filter(Q(client_id=term) | Q(name__icontains=term))
