"""The request/reply client and the bridge, against a real NATS server."""

from __future__ import annotations

import threading
import time

import pytest

from common.conf.context import request_id_var
from common.contracts.envelope import Agent
from common.contracts.errors import GatewayTimeout, ServiceError, ServiceUnavailable
from common.messaging.client import NatsClient
from devstack.testing.plugin import bridge_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def test_success_returns_reply_data_and_carries_agent_and_request_id(nats_client: NatsClient) -> None:
    token = request_id_var.set("req-0123456789")
    try:
        with bridge_in_thread(service="common"):
            reply = nats_client.request("test.echo", {"x": 1}, agent=Agent(id="u-1", roles=("user",)))
    finally:
        request_id_var.reset(token)
    assert reply == {"data": {"x": 1}, "agent": "u-1", "requestId": "req-0123456789"}


def test_void_reply_is_a_success_not_an_error(nats_client: NatsClient) -> None:
    with bridge_in_thread(service="common"):
        assert nats_client.request("test.none", {}) is None


def test_handler_error_comes_back_as_envelope(nats_client: NatsClient) -> None:
    with bridge_in_thread(service="common"), pytest.raises(ServiceError) as info:
        nats_client.request("test.conflict", {})
    assert info.value.status == 409
    assert info.value.to_body() == {
        "statusCode": 409,
        "error": "Conflict",
        "message": "Username already taken",
        "code": "conflict",
        "fields": {"username": ["taken"]},
    }


def test_data_json_cannot_carry_is_refused_as_the_callers_400_before_it_is_sent(nats_client: NatsClient) -> None:
    with bridge_in_thread(service="common"):
        with pytest.raises(ServiceError) as info:
            nats_client.request("test.echo", {"credential": {"n": 2**70}})
        assert nats_client.request("test.echo", {"n": 2**63 - 1})["data"] == {"n": 2**63 - 1}
    assert info.value.status == 400


def test_unexpected_handler_failure_is_500_without_internals(nats_client: NatsClient) -> None:
    with bridge_in_thread(service="common"), pytest.raises(ServiceError) as info:
        nats_client.request("test.crash", {})
    assert info.value.status == 500
    assert "boom" not in str(info.value.message)


def test_timeout_maps_to_504(nats_client: NatsClient) -> None:
    with bridge_in_thread(service="common"), pytest.raises(GatewayTimeout) as info:
        nats_client.request("test.slow", {"seconds": 1.0}, timeout=0.2)
    assert info.value.status == 504


def test_a_reply_after_its_timeout_reaches_nobody(nats_client: NatsClient) -> None:
    # The late reply of a request that gave up must not be taken for the answer to a later request.
    token = request_id_var.set("req-after-timeout")
    try:
        with bridge_in_thread(service="common", workers=2):
            with pytest.raises(GatewayTimeout):
                nats_client.request("test.slow", {"seconds": 0.5}, timeout=0.1)
            first = nats_client.request("test.echo", {"n": 1})
            time.sleep(0.6)  # the slow reply has arrived by now
            second = nats_client.request("test.echo", {"n": 2})
    finally:
        request_id_var.reset(token)
    assert first == {"data": {"n": 1}, "agent": None, "requestId": "req-after-timeout"}
    assert second == {"data": {"n": 2}, "agent": None, "requestId": "req-after-timeout"}


def test_no_responders_maps_to_503(nats_client: NatsClient) -> None:
    with pytest.raises(ServiceUnavailable) as info:
        nats_client.request("test.nobody.listens", {}, timeout=1.0)
    assert info.value.status == 503


def test_unreachable_server_maps_to_503() -> None:
    client = NatsClient("nats://127.0.0.1:1", name="unreachable", connect_timeout=0.5)
    with pytest.raises(ServiceUnavailable):
        client.request("test.echo", {})
    client.close()


def test_bridge_serves_requests_concurrently(nats_client: NatsClient) -> None:
    with bridge_in_thread(service="common", workers=4):
        results: list[object] = []
        started = time.perf_counter()
        threads = [
            threading.Thread(target=lambda: results.append(nats_client.request("test.slow", {"seconds": 0.5})))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    assert results == [{"slept": True}] * 4
    assert elapsed < 1.5, f"4 requests of 0.5 s took {elapsed:.2f} s: not concurrent"


def test_many_requests_in_flight_each_get_their_own_reply(nats_client: NatsClient) -> None:
    # Replies leave the bridge in batches; each must still reach its own requester, with its own request id.
    replies: dict[int, object] = {}

    def call(n: int) -> None:
        token = request_id_var.set(f"req-burst-{n:04d}")
        try:
            replies[n] = nats_client.request("test.echo", {"n": n}, agent=Agent(id=f"u-{n}"), timeout=10)
        finally:
            request_id_var.reset(token)

    with bridge_in_thread(service="common", workers=4):
        threads = [threading.Thread(target=call, args=(n,)) for n in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert replies == {n: {"data": {"n": n}, "agent": f"u-{n}", "requestId": f"req-burst-{n:04d}"} for n in range(64)}


def test_graceful_stop_finishes_in_flight_requests(nats_client: NatsClient) -> None:
    outcome: dict[str, object] = {}
    with bridge_in_thread(service="common") as bridge:

        def call() -> None:
            try:
                outcome["reply"] = nats_client.request("test.slow", {"seconds": 1.0}, timeout=5)
            except ServiceError as exc:
                outcome["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)  # the request is now in the handler
        bridge.stop()
        caller.join(timeout=10)
    assert outcome == {"reply": {"slept": True}}
    # After the stop nobody answers any more.
    with pytest.raises(ServiceUnavailable):
        nats_client.request("test.echo", {}, timeout=1.0)
