"""A dependency outage inside a handler answers 503 (the caller may retry), never the 500 of a bug."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.contracts.envelope import Request
from common.messaging.bridge import dispatch
from common.messaging.codec import dumps, loads


@pytest.mark.parametrize(
    "error", [RedisTimeoutError("Timeout reading from socket"), RedisConnectionError("Connection refused")]
)
def test_redis_outage_is_503(error: Exception) -> None:
    def handler(request: Request) -> None:
        raise error

    reply = loads(dispatch(handler, "test.redis", dumps({"data": {}}), None))
    assert reply == {
        "ok": False,
        "error": {
            "statusCode": 503,
            "error": "Service Unavailable",
            "message": "Session store unavailable",
            "code": "service_unavailable",
        },
    }


def test_a_bug_is_still_500() -> None:
    def handler(request: Request) -> None:
        raise KeyError("oops")

    reply = loads(dispatch(handler, "test.bug", dumps({"data": {}}), None))
    assert reply["error"]["statusCode"] == 500
