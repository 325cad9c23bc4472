"""Handlers used by common's own tests: echo, failures and a slow one."""

from __future__ import annotations

import time
from typing import Any

from common.contracts.envelope import Request
from common.contracts.errors import Conflict
from common.messaging.bridge import Handler


def echo(request: Request) -> Any:
    return {"data": request.data, "agent": request.agent.id if request.agent else None, "requestId": request.request_id}


def conflict(request: Request) -> Any:
    raise Conflict("Username already taken", fields={"username": ["taken"]})


def crash(request: Request) -> Any:
    raise RuntimeError("boom: secret internals must not leak")


def slow(request: Request) -> Any:
    time.sleep(float((request.data or {}).get("seconds", 1.0)))
    return {"slept": True}


def none(request: Request) -> Any:
    return None


HANDLERS: dict[str, Handler] = {
    "test.echo": echo,
    "test.conflict": conflict,
    "test.crash": crash,
    "test.slow": slow,
    "test.none": none,
}
