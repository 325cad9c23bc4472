"""Writing to the outbox. Must run inside the transaction of the change it records."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils.module_loading import import_string

from common.outbox.models import OutboxEvent


def outbox_append(*, aggregate_id: uuid.UUID | str, event_type: str, payload: dict[str, Any]) -> OutboxEvent:
    """Record an event atomically with the change; after commit, nudge the relay so latency stays low."""
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_append must run inside transaction.atomic() with the change it records")
    event = OutboxEvent.objects.create(
        aggregate_id=aggregate_id if isinstance(aggregate_id, uuid.UUID) else uuid.UUID(str(aggregate_id)),
        event_type=event_type,
        payload=payload,
    )
    kick_path = getattr(settings, "OUTBOX_KICK", None)
    if kick_path:
        kick: Callable[[], None] = import_string(kick_path)
        transaction.on_commit(kick)
    return event
