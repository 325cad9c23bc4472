"""Factories: read-model rows (the events' payloads: devstack.testing.factories)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import factory
from factory.django import DjangoModelFactory

from devstack.testing.factories import EPOCH
from main_api.users.models import User


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
