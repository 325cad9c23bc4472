"""Factories shared by the services' tests: identity-event payloads as the auth service publishes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import factory

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class UserEventFactory(factory.DictFactory):
    """The snapshot every user event but `deleted` carries (camelCase, ISO timestamps, a per-user version)."""

    id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    name = factory.Faker("name")
    username = factory.Sequence(lambda n: f"user{n:05d}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    roles = factory.LazyFunction(lambda: ["user"])
    verifiedAccount = False
    active = True
    createdAt = factory.Sequence(lambda n: (EPOCH + timedelta(minutes=n)).isoformat())
    updatedAt = factory.LazyAttribute(lambda o: o.createdAt)
    version = 1
