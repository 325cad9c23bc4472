"""Factories: identity-event payloads as the auth service publishes them, and read-model rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import factory
from factory.django import DjangoModelFactory

from main_api.users.models import User

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


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User

    id = factory.LazyFunction(uuid.uuid4)
    name = factory.Faker("name")
    username = factory.Sequence(lambda n: f"member{n:05d}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    roles = factory.LazyFunction(lambda: ["user"])
    is_verified = True
    is_active = True
    created_at = factory.Sequence(lambda n: EPOCH + timedelta(hours=n))
    updated_at = factory.LazyAttribute(lambda o: o.created_at)
    version = 1
