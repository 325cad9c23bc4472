"""The bridge: serves a project's NATS handlers in its queue group, and stops gracefully.

Handlers are plain synchronous functions (they use the ORM), run on a bounded thread pool, so one slow
request (an argon2 login) never holds up the loop or the subject. The hand-off is as cheap as it can be: the
loop submits each message straight to the pool (no task, future or semaphore per message) and a worker posts
its encoded reply to a queue that one sender coroutine on the loop publishes from, woken once for however many
replies are waiting. On SIGTERM the bridge unsubscribes first (no new work arrives, other instances of the queue
group take it), waits for in-flight requests to answer, stops background consumers, then drains the connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import msgspec
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.conf.context import accept_request_id, request_id_var, user_id_var
from common.conf.logging import current_log_level, set_service_log_level
from common.conf.process import freeze_startup_objects
from common.contracts import subjects
from common.contracts.envelope import REQUEST_ID_HEADER, Agent, Request, error_reply, ok_reply
from common.contracts.errors import BadRequest, InternalError, ServiceError, ServiceUnavailable
from common.contracts.rpc import Contract, to_builtins
from common.messaging.client import Credentials, open_connection, tune_switch_interval
from common.messaging.codec import dumps, loads
from common.messaging.handoff import LoopHandoff

log = logging.getLogger("common.bridge")

Handler = Callable[[Request], Any]
TypedHandler = Callable[[Request, Any], Any]  # the request and its data, decoded with the subject's contract
BackgroundTask = Callable[[NatsConnection, asyncio.Event, Executor], Coroutine[Any, Any, None]]


def handlers(table: Mapping[Contract[Any], TypedHandler]) -> dict[str, Handler]:
    """The bridge's subject → handler map from contract → typed handler: each handler is given the request's data
    decoded and validated with its contract (a 400 naming the field otherwise), and may answer Structs."""
    return {contract.subject: _typed(contract, handler) for contract, handler in table.items()}


def _typed(contract: Contract[Any], handler: TypedHandler) -> Handler:
    @functools.wraps(handler)
    def decoded(request: Request) -> Any:
        reply = handler(request, contract.decode(request.data))
        if isinstance(reply, msgspec.Struct) or (
            isinstance(reply, list) and reply and isinstance(reply[0], msgspec.Struct)
        ):
            return to_builtins(reply)
        return reply

    return decoded


def dispatch(handler: Handler, subject: str, raw: bytes, headers: Mapping[str, str] | None) -> bytes:
    """Decode one request, run its handler, and encode the reply envelope. Runs on a worker thread."""
    from django.db import InterfaceError, OperationalError, connections

    started = time.perf_counter()
    rid_token = request_id_var.set(accept_request_id((headers or {}).get(REQUEST_ID_HEADER)))
    uid_token = user_id_var.set(None)
    status = 200
    try:
        try:
            body = loads(raw) if raw else {}
        except ValueError:
            raise BadRequest("Malformed request envelope") from None
        if not isinstance(body, dict):
            raise BadRequest("Malformed request envelope")
        agent = Agent.from_dict(body.get("agent"))
        if agent is not None:
            user_id_var.set(agent.id)
        request = Request(
            subject=subject,
            data=body.get("data"),
            agent=agent,
            client=body.get("client") or {},
            request_id=request_id_var.get(),
        )
        reply = ok_reply(handler(request))
    except ServiceError as err:
        status = err.status
        reply = error_reply(err)
    except (OperationalError, InterfaceError) as exc:
        # The database is down or the connection broke: the caller may retry, so 503 rather than 500. The
        # thread's connection is dropped so the next message reconnects instead of failing on a dead socket.
        status = 503
        log.warning("database unavailable", extra={"subject": subject, "error": type(exc).__name__})
        reply = error_reply(ServiceUnavailable("Database unavailable"))
        for conn in connections.all(initialized_only=True):
            conn.close_if_unusable_or_obsolete()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # Redis (sessions, throttles, the Celery broker) is down or stalled: like the database, a dependency
        # outage the caller may retry, not a bug (the gateway fails closed the same way on its own Redis calls).
        status = 503
        log.warning("redis unavailable", extra={"subject": subject, "error": type(exc).__name__})
        reply = error_reply(ServiceUnavailable("Session store unavailable"))
    except Exception:
        status = 500
        log.exception("handler failed", extra={"subject": subject})
        reply = error_reply(InternalError())
    # No per-message close_old_connections(): each handler thread keeps one persistent connection (a health
    # check per message would cost a round trip); a broken one is dropped above when it fails.
    log.info(
        "nats request",
        extra={"subject": subject, "status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
    )
    request_id_var.reset(rid_token)
    user_id_var.reset(uid_token)
    try:
        return dumps(reply)
    except TypeError:
        log.exception("reply not serialisable", extra={"subject": subject})
        return dumps(error_reply(InternalError()))


class Bridge:
    """Serves `handlers` (subject → function) in queue group `queue`, plus optional background tasks.

    `workers` threads run the handlers (and the background tasks' blocking work): at most that many requests
    are handled at once, the rest wait in the pool's queue in arrival order.
    """

    def __init__(
        self,
        *,
        service: str,
        nats_url: str,
        handlers: Mapping[str, Handler],
        queue: str,
        workers: int = 8,
        background: Sequence[BackgroundTask] = (),
        grace_seconds: float = 20.0,
        credentials: Credentials | None = None,
    ) -> None:
        self.service = service
        self.credentials = credentials
        self.nats_url = nats_url
        self.handlers = dict(handlers)
        self.queue = queue
        self.workers = workers
        self.background = list(background)
        self.grace_seconds = grace_seconds
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{service}-handler")
        self.stop_event = asyncio.Event()
        self.ready_event = asyncio.Event()
        # Loop side: requests received and not yet answered, and whether there are none.
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Worker side: (reply subject or None, encoded reply) for the sender; made on the loop by run().
        self._replies: LoopHandoff[tuple[str | None, bytes]] | None = None
        self._subs: list[Subscription] = []

    def _builtin_handlers(self) -> dict[str, Handler]:
        def health(_: Request) -> dict[str, str]:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return {"status": "ok", "service": self.service}

        def get_level(_: Request) -> dict[str, str]:
            return {"service": self.service, "level": current_log_level()}

        return {subjects.health(self.service): health, subjects.log_level_get(self.service): get_level}

    def _set_level(self, request: Request) -> dict[str, str]:
        level = (request.data or {}).get("level") if isinstance(request.data, dict) else None
        try:
            applied = set_service_log_level(str(level))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return {"service": self.service, "level": applied}

    def _callback(self, handler: Handler) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            self._inflight += 1
            self._idle.clear()
            self.pool.submit(self._work, handler, msg.subject, msg.data, msg.headers, msg.reply or None)

        return on_message

    def _work(
        self, handler: Handler, subject: str, data: bytes, headers: Mapping[str, str] | None, reply_to: str | None
    ) -> None:
        """Worker thread: handle one request and hand its reply to the sender (every request posts one entry,
        replied to or not, so the in-flight count always comes back down)."""
        try:
            reply = dispatch(handler, subject, data, headers)
        except BaseException:  # dispatch answers every handler error itself; this is a bug in dispatch
            log.exception("dispatch failed", extra={"subject": subject})
            reply = dumps(error_reply(InternalError()))
        assert self._replies is not None
        self._replies.post((reply_to, reply))

    async def _send_replies(self, nc: NatsConnection) -> None:
        """Loop side: publish the replies the workers posted, one wake-up for all that are waiting."""
        assert self._replies is not None
        async for reply_to, reply in self._replies.items():
            if reply_to:
                try:
                    await nc.publish(reply_to, reply)
                except Exception:  # the requester may be gone; nothing else to do but say so
                    log.warning("could not send reply", extra={"subject": reply_to}, exc_info=True)
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def run(self) -> None:
        nc = await open_connection(self.nats_url, name=f"{self.service}-bridge", credentials=self.credentials)
        self._replies = LoopHandoff(asyncio.get_running_loop())
        sender = asyncio.create_task(self._send_replies(nc))
        try:
            for subject, handler in {**self._builtin_handlers(), **self.handlers}.items():
                self._subs.append(await nc.subscribe(subject, queue=self.queue, cb=self._callback(handler)))
            # Log-level changes go to every instance, so this one subscription has no queue group.
            self._subs.append(
                await nc.subscribe(subjects.log_level_set(self.service), cb=self._callback(self._set_level))
            )
            await nc.flush()
            tasks: list[asyncio.Task[None]] = [
                asyncio.create_task(task(nc, self.stop_event, self.pool)) for task in self.background
            ]
            log.info("bridge ready", extra={"subjects": len(self._subs), "queue": self.queue})
            self.ready_event.set()
            await self.stop_event.wait()
            log.info("bridge stopping: unsubscribing, finishing in-flight requests")
            for sub in self._subs:
                try:
                    await sub.unsubscribe()
                except Exception:  # already gone with the connection; in-flight work still finishes below
                    log.warning("unsubscribe failed", exc_info=True)
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=self.grace_seconds)
            except TimeoutError:
                log.warning("bridge stopping with requests unanswered", extra={"inflight": self._inflight})
            if tasks:
                await asyncio.wait(tasks, timeout=self.grace_seconds)
        finally:
            sender.cancel()
            try:
                await nc.drain()
            except Exception:  # closing is best effort at shutdown
                log.warning("drain failed", exc_info=True)
            self.pool.shutdown(wait=True)
            log.info("bridge stopped")

    def stop(self) -> None:
        self.stop_event.set()


def run_forever(bridge: Bridge) -> None:
    """Run a bridge until SIGTERM or SIGINT."""

    tune_switch_interval()
    freeze_startup_objects()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop)
        await bridge.run()

    asyncio.run(main())
