"""Reads of the security log."""

from __future__ import annotations

import contextlib
import ipaddress
import uuid

from django.db.models import Q, QuerySet

from auth_service.audit.crypto import identifier_digest
from auth_service.audit.models import SecurityEvent


def security_event_search(queryset: QuerySet[SecurityEvent], term: str) -> QuerySet[SecurityEvent]:
    """Events matching a user or actor id, an IP, a request id, or the e-mail/username given for an unknown account.

    Each column is compared only with a term of its own type (an inet or uuid column would reject anything else).
    """
    term = term.strip()
    if not term:
        return queryset
    match = Q(request_id=term) | Q(identifier_digest=identifier_digest(term))
    try:
        key = uuid.UUID(term)
    except ValueError:
        pass
    else:
        match |= Q(user_id=key) | Q(actor_id=key)
    with contextlib.suppress(ValueError):
        match |= Q(ip=str(ipaddress.ip_address(term)))
    return queryset.filter(match)
