"""SPEC §4b against the real embedded NATS server: who is refused, and what each identity may not do."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import nats.errors
import nkeys
import pytest
from django.conf import settings
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from common.conf.nats_trust import identities
from common.contracts import subjects
from common.messaging.client import Credentials, open_connection
from devstack.testing.plugin import identity_credentials

SETTLE_SECONDS = 0.3
# nats-py reports the server's -ERR lines in lower case.


async def _connect(credentials: Credentials, errors: list[Exception] | None = None) -> NatsConnection:
    async def on_error(exc: Exception) -> None:
        if errors is not None:
            errors.append(exc)

    return await open_connection(
        settings.NATS_URL,
        name="pytest-trust",
        credentials=credentials,
        allow_reconnect=False,
        connect_timeout=3,
        error_cb=on_error,
    )


async def _as(identity: str, errors: list[Exception] | None = None) -> NatsConnection:
    return await _connect(identity_credentials(identity, required=True), errors)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_an_anonymous_client_is_refused() -> None:
    async def go() -> None:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await _connect(Credentials())

    _run(go)


def test_a_key_the_server_does_not_know_is_refused() -> None:
    stranger = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER).decode()

    async def go() -> None:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await _connect(Credentials(seed=stranger))

    _run(go)


# Another service's subject, published with one identity's credentials: the server refuses it and nobody hears it.
FOREIGN_PUBLISHES = [
    ("gateway", "auth.user.registered"),  # forging an identity event
    ("auth-bridge", subjects.AUTH_USER_CREATE),  # a bridge acting as the gateway, with an agent of its choosing
    ("auth-worker", subjects.AUTH_USER_DELETE),
    ("main-bridge", "auth.user.deleted"),
    ("main-bridge", subjects.AUTH_LOGIN),
    ("main-bridge", "$JS.API.STREAM.DELETE.USERS"),  # the stream is the operator's
    ("auth-http", subjects.AUTH_DENY_ACCESS),
    ("main-http", subjects.USER_FIND_ALL),
]


@pytest.mark.parametrize(("identity", "subject"), FOREIGN_PUBLISHES)
def test_a_publish_outside_the_identitys_permissions_is_refused(identity: str, subject: str) -> None:
    async def go() -> None:
        listener = await _as("operator")
        heard: list[Msg] = []

        async def on_msg(msg: Msg) -> None:
            heard.append(msg)

        await listener.subscribe(subject, cb=on_msg)
        await listener.flush()
        errors: list[Exception] = []
        intruder = await _as(identity, errors)
        try:
            await intruder.publish(subject, b'{"agent": {"id": "x", "roles": ["sys_admin"]}}')
            await intruder.flush()
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await intruder.close()
            await listener.close()
        assert heard == []
        assert [str(exc) for exc in errors] == [f'nats: permissions violation for publish to "{subject.lower()}"']

    _run(go)


# Another service's requests or replies, read with one identity's credentials.
FOREIGN_SUBSCRIPTIONS = [
    ("gateway", subjects.AUTH_LOGIN),  # reading passwords on their way to the auth service
    ("main-bridge", subjects.AUTH_RESET_PASSWORD),
    ("auth-bridge", "_INBOX.gateway.>"),  # reading the gateway's replies (tokens)
    ("auth-worker", subjects.AUTH_LOGIN),
    ("main-http", "auth.user.>"),
]


@pytest.mark.parametrize(("identity", "subject"), FOREIGN_SUBSCRIPTIONS)
def test_a_subscription_outside_the_identitys_permissions_is_refused(identity: str, subject: str) -> None:
    async def go() -> None:
        errors: list[Exception] = []
        intruder = await _as(identity, errors)
        heard: list[Msg] = []

        async def on_msg(msg: Msg) -> None:
            heard.append(msg)

        publisher = await _as("operator")
        try:
            await intruder.subscribe(subject, cb=on_msg)
            await intruder.flush()
            await publisher.publish(subject.replace(">", "x"), b"secret")
            await publisher.flush()
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await intruder.close()
            await publisher.close()
        assert heard == []
        assert [str(exc) for exc in errors] == [f'nats: permissions violation for subscription to "{subject.lower()}"']

    _run(go)


def test_the_gateway_asks_and_the_auth_bridge_answers_within_their_permissions() -> None:
    async def go() -> None:
        errors: list[Exception] = []
        bridge = await _as("auth-bridge", errors)
        gateway = await _as("gateway", errors)

        async def answer(msg: Msg) -> None:
            await msg.respond(b"pong")

        try:
            await bridge.subscribe(subjects.AUTH_LOGIN, queue="auth", cb=answer)
            await bridge.flush()
            reply = await gateway.request(subjects.AUTH_LOGIN, b"ping", timeout=3)
        finally:
            await gateway.close()
            await bridge.close()
        assert reply.data == b"pong"
        assert reply.subject.startswith("_INBOX.gateway.")
        assert errors == []

    _run(go)


def test_only_auth_processes_may_publish_identity_events() -> None:
    publishers = {name for name, identity in identities().items() if "auth.user.>" in identity.publish}
    assert publishers == {"auth-bridge", "auth-worker"}
