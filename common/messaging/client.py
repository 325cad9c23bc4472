"""Request/reply over NATS from synchronous code: one persistent connection per process, on a loop thread.

Django views and Celery tasks are synchronous; the connection lives on a private asyncio loop in a daemon
thread so that a request costs one round trip and no connection set-up. The client is created lazily and
re-created after a fork (granian and Celery fork their workers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import nats
from nats.aio.client import Client as NatsConnection
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError, StaleConnectionError
from nats.errors import TimeoutError as NatsTimeoutError

from common.conf.context import request_id_var
from common.contracts.envelope import REQUEST_ID_HEADER, Agent, request_body, unwrap_reply
from common.contracts.errors import GatewayTimeout, ServiceError, ServiceUnavailable
from common.messaging.codec import dumps, loads

log = logging.getLogger(__name__)
T = TypeVar("T")

# The GIL switch interval of a process that serves or sends NATS messages from a loop thread while other threads
# run Python (granian's request threads, the bridge's handler threads). Every request hands the GIL from a
# caller to the loop and back; at the default 5 ms a busy thread holds it up to 5 ms at each hand-off. Measured
# with a CPU-bound thread beside a serial request loop: p50 16.6-25.7 -> 8.3-12.7 ms, p99 56-125 -> 32-68 ms.
SWITCH_INTERVAL_SECONDS = 0.001


def tune_switch_interval() -> None:
    """Lower this process's GIL switch interval to SWITCH_INTERVAL_SECONDS (never raise it)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_SECONDS:
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


class NatsClient:
    """A NATS connection owned by a background event loop, with blocking helpers for sync callers."""

    def __init__(self, url: str, *, name: str, connect_timeout: float = 2.0) -> None:
        self.url = url
        self.name = name
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: NatsConnection | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            tune_switch_interval()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"nats-{self.name}", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the client's loop and wait for it.

        Cheaper than asyncio.run_coroutine_threadsafe (a concurrent Future chained to the task, a Condition to
        wait on): one call_soon_threadsafe starts the task, its done-callback releases a plain lock the caller
        blocks on. On timeout the task is cancelled and the caller gets GatewayTimeout.
        """
        call = _Call(coro)
        self._ensure_loop().call_soon_threadsafe(call.start)
        if not call.done.acquire(timeout=-1 if timeout is None else timeout):
            self._ensure_loop().call_soon_threadsafe(call.cancel)
            raise GatewayTimeout() from None
        if call.error is not None:
            raise call.error
        return cast(T, call.result)

    def connection(self) -> NatsConnection:
        nc = self._nc
        if nc is not None and not nc.is_closed:
            return nc
        with self._lock:
            if self._nc is None or self._nc.is_closed:
                try:
                    self._nc = self.run(self._connect(), timeout=self.connect_timeout + 1)
                except GatewayTimeout:
                    raise ServiceUnavailable("Messaging is unavailable") from None
            return self._nc

    async def _connect(self) -> NatsConnection:
        try:
            # The first connect must fail fast (a request is waiting on it); reconnects after that are endless.
            return await asyncio.wait_for(self._open(), timeout=self.connect_timeout)
        except (TimeoutError, NoServersError, OSError, NatsTimeoutError) as exc:
            raise ServiceUnavailable("Messaging is unavailable") from exc

    async def _open(self) -> NatsConnection:
        return await nats.connect(
            server_urls(self.url),
            name=self.name,
            connect_timeout=self.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=_log_error,
        )

    def close(self) -> None:
        if self._nc is not None and self._loop is not None:
            try:
                self.run(self._nc.drain(), timeout=5)
            except Exception:  # closing is best effort; the process is going away
                log.warning("nats drain on close failed", exc_info=True)
            self._nc = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    # -- request/reply -------------------------------------------------------------------------------
    def request(
        self,
        subject: str,
        data: Any = None,
        *,
        agent: Agent | None = None,
        client: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return the reply's data; errors come back as ServiceError (504, 503 included)."""
        nc = self.connection()
        if not nc.is_connected:
            # Reconnecting: answer at once rather than buffer the request until it times out.
            raise ServiceUnavailable("Messaging is unavailable")
        wait = timeout if timeout is not None else _default_timeout()
        headers = {REQUEST_ID_HEADER: request_id_var.get() or ""}
        payload = dumps(request_body(data, agent, client))
        return self.run(_request(nc, subject, payload, headers, wait), timeout=wait + 1.0)

    def publish(self, subject: str, data: Any) -> None:
        nc = self.connection()
        headers = {REQUEST_ID_HEADER: request_id_var.get() or ""}
        self.run(_publish(nc, subject, dumps(data), headers), timeout=5)

    def is_connected(self) -> bool:
        """True when a request/reply round trip through the server works now (the readiness check).

        Not `nc.flush(timeout)`: when the server stalls past the timeout, nats-py leaves the flush's cancelled
        future in its PONG queue, and the PONG that arrives after the stall kills the connection's read loop
        for good (InvalidStateError) while the connection still says it is connected: every later request
        times out until the process restarts. A request to an inbox nobody serves makes the same round trip;
        the server answers it at once with "no responders".
        """
        try:
            nc = self.connection()
            if not nc.is_connected:
                return False
            self.run(_round_trip(nc), timeout=2)
        except Exception:  # noqa: BLE001 - readiness: any failure means "not ready", reported by the caller
            return False
        return True


class _Call:
    """One coroutine run on the client's loop for a thread that waits on `done` (released when it finishes)."""

    __slots__ = ("coro", "done", "error", "result", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:  # on the loop
        self.task = asyncio.ensure_future(self.coro)
        self.task.add_done_callback(self._finish)

    def cancel(self) -> None:  # on the loop, after the caller gave up
        if self.task is not None:
            self.task.cancel()

    def _finish(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.error = GatewayTimeout()
        elif (error := task.exception()) is not None:
            self.error = error
        else:
            self.result = task.result()
        self.done.release()


def server_urls(url: str) -> list[str]:
    """NATS_URL as a seed list: `nats://a:4222,nats://b:4222` names every server of a cluster, so a process
    can start while any one of them is down (nats-py takes a list, not a comma-separated string)."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def _request(nc: NatsConnection, subject: str, payload: bytes, headers: dict[str, str], wait: float) -> Any:
    try:
        msg = await nc.request(subject, payload, timeout=wait, headers=headers)
    except NoRespondersError:
        raise ServiceUnavailable(f"No service is answering {subject}") from None
    except NatsTimeoutError:
        raise GatewayTimeout() from None
    except (ConnectionClosedError, StaleConnectionError, NoServersError, OSError) as exc:
        raise ServiceUnavailable("Messaging is unavailable") from exc
    try:
        reply = loads(msg.data)
    except ValueError:
        raise ServiceError("Malformed reply from service", status=502, code="bad_reply") from None
    return unwrap_reply(reply)


async def _round_trip(nc: NatsConnection) -> None:
    """One request to a fresh inbox: the server's "no responders" reply proves both directions work."""
    try:
        await nc.request(nc.new_inbox(), b"", timeout=1)
    except NoRespondersError:
        return


async def _publish(nc: NatsConnection, subject: str, payload: bytes, headers: dict[str, str]) -> None:
    await nc.publish(subject, payload, headers=headers)


async def _log_error(exc: Exception) -> None:
    log.warning("nats connection error: %s", exc)


def _default_timeout() -> float:
    from django.conf import settings

    return float(getattr(settings, "NATS_REQUEST_TIMEOUT", 5.0))


_client: NatsClient | None = None
_client_pid: int | None = None
_client_lock = threading.Lock()


def get_client() -> NatsClient:
    """The process-wide client; a forked child gets its own (a loop thread does not survive fork)."""
    global _client, _client_pid
    pid = os.getpid()
    if _client is None or _client_pid != pid:
        with _client_lock:
            if _client is None or _client_pid != pid:
                from django.conf import settings

                _client = NatsClient(settings.NATS_URL, name=f"{settings.SERVICE_NAME}-{pid}")
                _client_pid = pid
    return _client


def reset_client() -> None:
    """Close and forget the process-wide client, so the next get_client() connects to the current NATS_URL."""
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None


def request(subject: str, data: Any = None, **kwargs: Any) -> Any:
    return get_client().request(subject, data, **kwargs)
