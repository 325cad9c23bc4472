"""Fixtures of the accounts tests: the real bridge over real NATS, mail in memory, tasks inline, Redis tidied."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from django.core import mail
from django.test import Client
from django_redis import get_redis_connection

from auth_service.accounts.models import User
from auth_service.accounts.services import signing_keys
from auth_service.accounts.sessions import session_store_delete_all
from auth_service.accounts.tests.factories import PASSWORD
from auth_service.accounts.throttle import login_attempt_keys, verification_attempt_key
from auth_service.celery import app as celery_app
from common.contracts import subjects
from common.contracts.envelope import Agent
from common.contracts.errors import ServiceError
from common.contracts.sessions import user_epoch_key
from common.messaging.client import NatsClient
from devstack.testing.plugin import bridge_in_thread

CODE = re.compile(r"verification code is (\d{6})")
RECOVERY = re.compile(r"recovery token is:\n\n(\S+)\n")


@pytest.fixture(autouse=True)
def _accounts_settings(settings: Any) -> Iterator[None]:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # The relay has its own tests; here the outbox rows themselves are what is asserted.
    settings.OUTBOX_KICK = None
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    # Each test starts from an empty database: a signing key cached by an earlier test no longer exists.
    signing_keys.signing_key_cache_forget()
    yield
    celery_app.conf.task_always_eager = eager
    signing_keys.signing_key_cache_forget()


@pytest.fixture
def cookie_sessions(settings: Any) -> None:
    """Admin console logins keep their session in a signed cookie: no session keys left behind in the shared Redis."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"


def logged_in(user: User) -> Client:
    """A console client logged in as `user` (with `cookie_sessions`)."""
    client = Client()
    client.force_login(user)
    return client


@dataclass
class AuthApi:
    """The auth service as the gateway sees it: NATS requests to a real bridge."""

    client: NatsClient
    redis_keys: list[str] = field(default_factory=list)
    unknown_slugs: list[str] = field(default_factory=list)

    def __call__(
        self, subject: str, data: Any = None, *, agent: Agent | None = None, client: dict[str, Any] | None = None
    ) -> Any:
        return self.client.request(subject, data, agent=agent, client=client, timeout=15)

    def error(self, subject: str, data: Any = None, **kwargs: Any) -> ServiceError:
        with pytest.raises(ServiceError) as info:
            self(subject, data, **kwargs)
        return info.value

    def login(self, slug: str, password: str = PASSWORD, *, user_agent: str = "pytest-agent") -> dict[str, Any]:
        return self(
            subjects.AUTH_LOGIN,
            {"slug": slug, "password": password},
            client={"ip": "10.0.0.1", "user_agent": user_agent},
        )

    def forget_slug(self, slug: str) -> None:
        """Failed logins for a slug without an account are counted under the slug: clean those counters up."""
        self.unknown_slugs.append(slug)

    def jwks(self) -> dict[str, Any]:
        return self(subjects.AUTH_JWKS)

    def decode_access(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Verify an access token as the gateway does: key from the JWKS by kid, RS256 pinned, iss and aud checked."""
        header = jwt.get_unverified_header(token)
        keys = {key["kid"]: key for key in self.jwks()["keys"]}
        public = jwt.PyJWK(keys[header["kid"]]).key
        from django.conf import settings

        claims = jwt.decode(
            token, public, algorithms=["RS256"], audience=settings.JWT_AUDIENCE, issuer=settings.JWT_ISSUER
        )
        return header, claims


def failure_keys(*, user_id: str | None, slug: str = "") -> list[str]:
    """The failure counters of an account in Redis: its login budget, that of each of its sources, its code budget."""
    account_key = login_attempt_keys(user_id=user_id, slug=slug, ip=None).account_key
    redis = get_redis_connection("default")
    return [
        *(key.decode() for key in redis.scan_iter(match=f"{account_key}*", count=1000)),
        verification_attempt_key(user_id=user_id, email=slug),
    ]


def agent_of(user: User, *, sid: str | None = None) -> Agent:
    return Agent(id=str(user.id), roles=tuple(user.roles), sid=sid)


def mailed_code() -> str:
    match = CODE.search(mail.outbox[-1].body)
    assert match is not None
    return match.group(1)


def mailed_recovery_token() -> str:
    match = RECOVERY.search(mail.outbox[-1].body)
    assert match is not None
    return match.group(1)


@pytest.fixture
def auth(transactional_db: None, gateway_client: NatsClient) -> Iterator[AuthApi]:
    # As deployed: the gateway's identity asks, the auth bridge's identity answers (and relays the outbox).
    api = AuthApi(gateway_client)
    with bridge_in_thread(service="auth", identity="auth-bridge"):
        yield api
    # Only keys these tests created: other suites share this Redis.
    redis = get_redis_connection("default")
    for user_id in User.objects.values_list("id", flat=True):
        session_store_delete_all(str(user_id))
        api.redis_keys.append(user_epoch_key(str(user_id)))
        api.redis_keys.extend(failure_keys(user_id=str(user_id)))
    for slug in api.unknown_slugs:
        api.redis_keys.extend(failure_keys(user_id=None, slug=slug))
    if api.redis_keys:
        redis.delete(*api.redis_keys)
