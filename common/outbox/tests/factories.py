"""Factories for outbox tests: events appended as the producer appends them."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from common.contracts import events
from common.outbox.models import OutboxEvent
from common.outbox.services import outbox_append
from devstack.testing.factories import UserEventFactory


def append_event(
    aggregate_id: uuid.UUID | None = None, event_type: str = events.USER_UPDATED, **payload: Any
) -> OutboxEvent:
    """Write one event the way the producer does: outbox_append inside the change's transaction."""
    aggregate_id = aggregate_id or uuid.uuid4()
    with transaction.atomic():
        return outbox_append(
            aggregate_id=aggregate_id,
            event_type=event_type,
            payload=UserEventFactory(id=str(aggregate_id), **payload),
        )
