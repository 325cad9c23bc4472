"""Request/reply over NATS from synchronous code: one persistent connection per process, on a loop thread.

Django views and Celery tasks are synchronous; the connection lives on a private asyncio loop in a daemon
thread so that a request costs one round trip and no connection set-up. The client is created lazily and
re-created after a fork (granian and Celery fork their workers).

A request does as little as it can on the loop, which every thread of the process shares: the calling thread
encodes it, queues it for one sender coroutine (woken once for however many are waiting, as the bridge's
replies are) and blocks on a plain lock; the reply, on the connection's one wildcard inbox subscription, releases
that lock directly, and the caller decodes it. No task, future or timer per request on the loop: the caller
keeps its own deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import nats
from nats.aio.client import NO_RESPONDERS_STATUS
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoServersError, StaleConnectionError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import Header

from common.conf.context import request_id_var
from common.contracts.envelope import REQUEST_ID_HEADER, Agent, request_body, unwrap_reply
from common.contracts.errors import BadRequest, GatewayTimeout, ServiceError, ServiceUnavailable
from common.messaging.codec import dumps, loads
from common.messaging.handoff import LoopHandoff
from common.per_process import PerProcess

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


@dataclass(frozen=True)
class Credentials:
    """Who a connection is (SPEC §4b): the NKEY seed of its identity, and the inbox prefix its permissions allow.

    Without a seed the client connects anonymously, which only a server with no authorization accepts.
    """

    seed: str | None = None
    inbox_prefix: str = "_INBOX"

    def connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"inbox_prefix": self.inbox_prefix}
        if self.seed:
            options["nkeys_seed_str"] = self.seed
        return options


def process_credentials() -> Credentials:
    """This process's identity: NATS_NKEY_SEED (or NATS_NKEY_SEED_FILE) and the service's inbox prefix."""
    from django.conf import settings

    if settings.configured:
        return Credentials(
            seed=settings.NATS_NKEY_SEED,
            inbox_prefix=settings.NATS_INBOX_PREFIX,
        )
    from common.conf.env import env

    return Credentials(seed=env("NATS_NKEY_SEED"))


async def open_connection(
    url: str, *, name: str, credentials: Credentials | None = None, **options: Any
) -> NatsConnection:
    """The one way a process connects: its seed list, its identity, endless reconnects unless told otherwise."""
    settings: dict[str, Any] = {
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "error_cb": _log_error,
        **options,
    }
    who = credentials if credentials is not None else process_credentials()
    return await nats.connect(server_urls(url), name=name, **who.connect_options(), **settings)


class NatsClient:
    """A NATS connection owned by a background event loop, with blocking helpers for sync callers."""

    def __init__(
        self, url: str, *, name: str, connect_timeout: float = 2.0, credentials: Credentials | None = None
    ) -> None:
        self.url = url
        self.name = name
        self.connect_timeout = connect_timeout
        self.credentials = credentials
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: NatsConnection | None = None
        self._exchange: _Exchange | None = None

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
        return self._connected().nc

    def _connected(self) -> _Exchange:
        exchange = self._exchange
        if exchange is not None and not exchange.nc.is_closed:
            return exchange
        with self._lock:
            if self._exchange is None or self._exchange.nc.is_closed:
                if self._exchange is not None:
                    self._ensure_loop().call_soon_threadsafe(self._exchange.stop)
                try:
                    self._exchange = self.run(self._connect(), timeout=self.connect_timeout + 1)
                except GatewayTimeout:
                    raise ServiceUnavailable("Messaging is unavailable") from None
                self._nc = self._exchange.nc
            return self._exchange

    async def _connect(self) -> _Exchange:
        try:
            # The first connect must fail fast (a request is waiting on it); reconnects after that are endless.
            nc = await asyncio.wait_for(self._open(), timeout=self.connect_timeout)
            return await _Exchange.start(nc)
        except (TimeoutError, NoServersError, OSError, NatsTimeoutError) as exc:
            raise ServiceUnavailable("Messaging is unavailable") from exc

    async def _open(self) -> NatsConnection:
        return await open_connection(
            self.url, name=self.name, credentials=self.credentials, connect_timeout=self.connect_timeout
        )

    def close(self) -> None:
        if self._exchange is not None and self._loop is not None:
            try:
                self.run(self._exchange.close(), timeout=5)
            except Exception:  # closing is best effort; the process is going away
                log.warning("nats drain on close failed", exc_info=True)
            self._exchange = self._nc = None
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
        exchange = self._connected()
        if not exchange.nc.is_connected:
            # Reconnecting: answer at once rather than buffer the request until it times out.
            raise ServiceUnavailable("Messaging is unavailable")
        wait = timeout if timeout is not None else _default_timeout()
        headers = {REQUEST_ID_HEADER: request_id_var.get() or ""}
        try:
            body = dumps(request_body(data, agent, client))
        except TypeError:
            # What a caller sent holds a value JSON between the services cannot carry (an integer beyond 64 bits):
            # the request's fault, refused before it leaves.
            raise BadRequest("The request holds a value that cannot be forwarded") from None
        msg = exchange.request(subject, body, headers, wait)
        try:
            reply = loads(msg.data)
        except ValueError:
            raise ServiceError("Malformed reply from service", status=502, code="bad_reply") from None
        return unwrap_reply(reply)

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
            exchange = self._connected()
            if not exchange.nc.is_connected:
                return False
            exchange.request(exchange.nc.new_inbox(), b"", None, 1)
        except ServiceUnavailable as exc:
            return isinstance(exc, _NoResponders)
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


class _NoResponders(ServiceUnavailable):
    """The server's own answer that nobody subscribes to the subject."""


class _Waiting:
    """One request waiting for its reply: the caller blocks on `done`, released when `msg` or `error` is set."""

    __slots__ = ("done", "error", "msg")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.msg: Msg | None = None
        self.error: BaseException | None = None


class _Exchange:
    """Request/reply on one connection: the sender coroutine, the inbox subscription and the waiting requests.

    Each request gets its own reply subject under the connection's inbox prefix (random per connection; a
    counter after it), so a late reply to a request that gave up finds nobody waiting and is dropped.
    """

    def __init__(self, nc: NatsConnection, prefix: str) -> None:
        self.nc = nc
        self.prefix = prefix
        self._numbers = itertools.count()
        self._waiting: dict[str, _Waiting] = {}
        # Requests queued by the calling threads for the sender coroutine.
        self._outbox: LoopHandoff[tuple[str, str, bytes, dict[str, str] | None]] = LoopHandoff(
            asyncio.get_running_loop()
        )
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, nc: NatsConnection) -> _Exchange:
        exchange = cls(nc, nc.new_inbox())
        await nc.subscribe(f"{exchange.prefix}.*", cb=exchange._on_reply)
        exchange._sender = asyncio.create_task(exchange._send())
        return exchange

    def request(self, subject: str, payload: bytes, headers: dict[str, str] | None, wait: float) -> Msg:
        """Caller thread: send one request and block for its reply (at most `wait` seconds)."""
        reply_to = f"{self.prefix}.{next(self._numbers)}"
        waiting = _Waiting()
        self._waiting[reply_to] = waiting
        self._outbox.post((subject, reply_to, payload, headers))
        if not waiting.done.acquire(timeout=wait):
            self._waiting.pop(reply_to, None)
            raise GatewayTimeout()
        if waiting.error is not None:
            raise waiting.error
        msg = waiting.msg
        assert msg is not None
        # As nats-py's own request() tells the server's "no responders" status from a reply.
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS_STATUS:
            raise _NoResponders(f"No service is answering {subject}")
        return msg

    async def _on_reply(self, msg: Msg) -> None:
        waiting = self._waiting.pop(msg.subject, None)
        if waiting is not None:
            waiting.msg = msg
            waiting.done.release()

    async def _send(self) -> None:
        """Loop side: publish the queued requests, one wake-up for all that are waiting."""
        async for subject, reply_to, payload, headers in self._outbox.items():
            try:
                await self.nc.publish(subject, payload, reply=reply_to, headers=headers)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
                self._fail(reply_to, exc)

    def _fail(self, reply_to: str, exc: Exception) -> None:
        waiting = self._waiting.pop(reply_to, None)
        if waiting is None:
            return
        if isinstance(exc, ConnectionClosedError | StaleConnectionError | NoServersError | OSError):
            error: BaseException = ServiceUnavailable("Messaging is unavailable")
            error.__cause__ = exc
        else:
            error = exc
        waiting.error = error
        waiting.done.release()

    def stop(self) -> None:  # on the loop
        if self._sender is not None:
            self._sender.cancel()

    async def close(self) -> None:
        self.stop()
        await self.nc.drain()


def server_urls(url: str) -> list[str]:
    """NATS_URL as a seed list: `nats://a:4222,nats://b:4222` names every server of a cluster, so a process
    can start while any one of them is down (nats-py takes a list, not a comma-separated string)."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def _publish(nc: NatsConnection, subject: str, payload: bytes, headers: dict[str, str]) -> None:
    await nc.publish(subject, payload, headers=headers)


async def _log_error(exc: Exception) -> None:
    log.warning("nats connection error: %s", exc)


def _default_timeout() -> float:
    from django.conf import settings

    return float(settings.NATS_REQUEST_TIMEOUT)


def _new_client() -> NatsClient:
    from django.conf import settings

    return NatsClient(settings.NATS_URL, name=f"{settings.SERVICE_NAME}-{os.getpid()}")


_client: PerProcess[NatsClient] = PerProcess(_new_client)


def get_client() -> NatsClient:
    """The process-wide client; a forked child gets its own (a loop thread does not survive fork)."""
    return _client.get()


def reset_client() -> None:
    """Close and forget the process-wide client, so the next get_client() connects to the current NATS_URL."""
    _client.reset(NatsClient.close)


def request(subject: str, data: Any = None, **kwargs: Any) -> Any:
    return get_client().request(subject, data, **kwargs)
