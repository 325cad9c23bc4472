"""Factories for outbox tests: user snapshots as the auth service's events carry them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import factory
from django.db import transaction

from common.contracts import events
from common.outbox.models import OutboxEvent
from common.outbox.services import outbox_append


class UserSnapshotFactory(factory.DictFactory):
    id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    name = factory.Faker("name")
    username = factory.Sequence(lambda n: f"user{n:05d}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    roles = factory.LazyFunction(lambda: ["user"])
    verifiedAccount = False
    active = True
    createdAt = factory.LazyFunction(lambda: datetime.now(UTC).isoformat())
    updatedAt = factory.LazyFunction(lambda: datetime.now(UTC).isoformat())
    version = 1


def append_event(
    aggregate_id: uuid.UUID | None = None, event_type: str = events.USER_UPDATED, **payload: Any
) -> OutboxEvent:
    """Write one event the way the producer does: outbox_append inside the change's transaction."""
    aggregate_id = aggregate_id or uuid.uuid4()
    with transaction.atomic():
        return outbox_append(
            aggregate_id=aggregate_id,
            event_type=event_type,
            payload=UserSnapshotFactory(id=str(aggregate_id), **payload),
        )
