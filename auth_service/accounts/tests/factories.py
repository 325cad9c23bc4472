"""factory-boy factories of the accounts tests."""

from __future__ import annotations

import uuid
from functools import cache

import factory
from django.contrib.auth.hashers import make_password

from auth_service.accounts.models import User

PASSWORD = "Kx9!mQ2#vLp7zR"


@cache
def password_hash(raw: str) -> str:
    """Hashing costs tens of milliseconds: hash each distinct test password once per run."""
    return make_password(raw)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    name = "Test User"
    # Unique across runs, not only within one: Redis outlives the test database.
    username = factory.LazyFunction(lambda: f"user{uuid.uuid4().hex[:16]}")
    email = factory.LazyFunction(lambda: f"user-{uuid.uuid4().hex[:16]}@example.com")
    password = factory.LazyFunction(lambda: password_hash(PASSWORD))
    roles = factory.LazyFunction(lambda: ["user"])
    is_active = True
    is_verified = True
