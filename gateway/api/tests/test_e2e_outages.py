"""Outages on the event path: sign-ups accepted while NATS, main_api's consumer or the outbox relay is stopped all
reach main_api exactly once after it is started again, with every other process left running throughout.

Each scenario accepts 100 sign-ups during the outage, checks where they are held (the outbox, or the stream),
starts the stopped part again and waits (bounded) until main_api has every user once: one inbox row per event,
no dead letter, each event once in the stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.api.tests.outages import (
    SIGNUPS,
    OutageStack,
    assert_delivered_once,
    assert_recovered,
    outage_stack,
    process_stopped,
    restart_nats,
    sign_up_in_auth_service,
    signups_held,
    stop,
    user_ids,
    wait_for,
    warm_up,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def outage() -> Iterator[OutageStack]:
    """A stack of this module's own (its NATS is stopped and started again), with the whole pipeline warmed up."""
    with outage_stack() as stack:
        warm_up(stack)
        yield stack


def test_signups_accepted_while_nats_is_down_reach_main_api_once_nats_is_back(outage: OutageStack) -> None:
    pids = outage.pids()
    stop(outage.nats)
    try:
        # The gateway reaches the auth service over NATS: the sign-ups are accepted by the auth service itself.
        accounts = sign_up_in_auth_service(outage)
        ids = user_ids(outage, accounts)
        emails = [a.email for a in accounts]
        # The relay has tried every row and published none: the outbox holds them, backing off.
        held = wait_for(
            outage,
            ids,
            emails,
            lambda s: len(s.outbox) == SIGNUPS and s.attempted == SIGNUPS,
            "tried by the relay",
            stopped=["nats"],
            timeout=30.0,
        )
        assert (held.published, held.main_users, held.inbox) == (0, 0, 0), held
    finally:
        if not outage.nats.is_running():
            restart_nats(outage)

    assert_delivered_once(outage, accounts, ids)
    assert_recovered(outage, pids)


def test_signups_while_main_api_consumer_is_stopped_reach_it_once_it_is_started(outage: OutageStack) -> None:
    pids = outage.pids()
    with process_stopped(outage, "main-bridge"):
        # The relay publishes them all; the stream holds them for the durable consumer, which is not there.
        accounts, ids, held = signups_held(
            outage,
            lambda s: len(s.outbox) == SIGNUPS and s.published == SIGNUPS,
            "published to the stream",
            stopped="main-bridge",
        )
        assert (held.main_users, held.inbox) == (0, 0), held

    assert_delivered_once(outage, accounts, ids)
    assert_recovered(outage, pids, restarted="main-bridge")


def test_signups_while_the_relay_is_stopped_reach_main_api_once_it_is_started(outage: OutageStack) -> None:
    # The Celery worker is the relay and runs beat (the periodic relay) embedded: both stop with it.
    pids = outage.pids()
    with process_stopped(outage, "auth-celery"):
        # Every sign-up answered after its commit: all 100 rows are in the outbox, and nobody has tried them.
        accounts, ids, held = signups_held(
            outage, lambda s: len(s.outbox) == SIGNUPS, "in the outbox", stopped="auth-celery", timeout=5.0
        )
        assert (held.published, held.attempted, held.main_users, held.inbox) == (0, 0, 0, 0), held

    assert_delivered_once(outage, accounts, ids)
    assert_recovered(outage, pids, restarted="auth-celery")
