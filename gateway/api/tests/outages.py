"""A stack whose NATS server, main_api consumer and outbox relay a test may stop and start again, and what it reads.

The stack is devstack.testing.stack's, on `outage_` databases and a Celery broker database of its own, with a
private nats-server started here rather than by the harness, so that the test holds the process and can stop it
and start it again on the same port and JetStream store. The relay's backoff is capped lower than production's
(RETRY_CAP_SECONDS), so the wait after an outage does not grow with its length. Every check reads the services' own databases and the
stream: the outbox, the inbox, the dead letters and main_api's read model are what is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from nats.js.errors import NotFoundError

from common.messaging.client import open_connection
from devstack.procs import choose_port
from devstack.servers import NatsServer
from devstack.testing.stack import (
    REPO_ROOT,
    SETTINGS,
    RunningStack,
    StackError,
    StackProcess,
    running_stack,
    start_process,
    stop_processes,
    wait_until_healthy,
)
from gateway.api.tests.e2e import Account, Api, eventually, gateway_pointed_at, new_account, sign_up

DB_PREFIX = "outage_"
STACK_NAME = "outage"
# The e2e stack's broker is Redis database 13 and the scale suite's 12: a worker of theirs must not take our tasks.
CELERY_DB = 11
SIGNUPS = 100
# The relay's backoff doubles up to OUTBOX_RETRY_MAX_SECONDS (300 s by default), so after an outage of D seconds
# its next try may be up to ~D seconds away. Capped here, a scenario's wait after recovery does not grow with how
# long the sign-ups took on a busy machine; every other retry rule is the production one.
RETRY_CAP_SECONDS = "4"
# The auth bridge also relays in-process right after each commit; here it is off, so that stopping the Celery
# worker (which runs beat) stops every relay, and the NATS scenario exercises the relay that outlives any outage.
# The in-process relay has its own tests (common/outbox/tests/test_relay.py) and serves every other e2e stack.
LOCAL_RELAY = "false"
# Generous for 100 events on a shared two-core machine; the poll returns as soon as everything has arrived.
CONVERGE_SECONDS = 90.0
NATS_READY_SECONDS = 30.0
POLL_SECONDS = 0.2
# Which service's settings each restartable stack process runs with.
PROCESS_SERVICE = {"main-bridge": "main", "auth-celery": "auth", "auth-bridge": "auth"}


@dataclass
class OutageStack:
    """The running stack plus the nats-server this module owns."""

    stack: RunningStack
    nats: StackProcess
    log_dir: Path

    @property
    def stream(self) -> str:
        return self.stack.env.get("USER_EVENTS_STREAM") or "USERS"

    def process(self, name: str) -> StackProcess:
        return next(process for process in self.stack.processes if process.name == name)

    def pids(self) -> dict[str, int]:
        return {process.name: process.popen.pid for process in self.stack.processes}


# --- the stack ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def outage_stack() -> Iterator[OutageStack]:
    """running_stack() on outage_ databases with a NATS server of our own; this process is its gateway."""
    var_dir = REPO_ROOT / "var" / STACK_NAME
    var_dir.mkdir(parents=True, exist_ok=True)
    nats_dir = Path(tempfile.mkdtemp(prefix="nats-", dir=var_dir))
    log_dir = nats_dir / "logs"
    log_dir.mkdir()
    store = nats_dir / "jetstream"
    port = choose_port()
    argv = [str(NatsServer.binary()), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    nats_url, nats_process = f"nats://127.0.0.1:{port}", start_nats(argv, log_dir)
    outage: OutageStack | None = None
    clean = False
    try:
        with contextlib.ExitStack() as exits:
            # The harness copies the environment into the stack's when it starts; ours is put back at once.
            with _environ(
                E2E_NATS_URL=nats_url,
                E2E_CELERY_BROKER_URL=_redis_db(CELERY_DB),
                OUTBOX_RETRY_MAX_SECONDS=RETRY_CAP_SECONDS,
                OUTBOX_LOCAL_RELAY=LOCAL_RELAY,
            ):
                stack = exits.enter_context(running_stack(seed=False, db_prefix=DB_PREFIX, name=STACK_NAME))
            exits.enter_context(gateway_pointed_at(stack.nats_url))
            outage = OutageStack(stack=stack, nats=nats_process, log_dir=log_dir)
            yield outage
        clean = True
    finally:
        # The harness has stopped its processes by now (they drain to NATS on the way out); then our NATS,
        # whichever process it is after restarts.
        stuck = stop_processes([outage.nats if outage is not None else nats_process])
        if clean and not stuck and not os.environ.get("E2E_KEEP"):
            shutil.rmtree(nats_dir, ignore_errors=True)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _redis_db(db: int) -> str:
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path=f"/{db}"))


# --- stopping and starting processes -----------------------------------------------------------------------------


def stop(process: StackProcess) -> None:
    """SIGTERM, as an orchestrator stops a process; it must exit cleanly within the harness's timeout."""
    stuck = stop_processes([process])
    assert not stuck, f"{process.name} did not stop on SIGTERM:\n{process.tail()}"
    assert process.popen.returncode == 0, f"{process.name} exited {process.popen.returncode}:\n{process.tail()}"


def restart(outage: OutageStack, name: str) -> StackProcess:
    """The stopped stack process `name` again: same command and environment, a new log, the same place in the
    harness's list (so the harness stops and checks the new one at the end)."""
    processes = outage.stack.processes
    old = next(process for process in processes if process.name == name)
    assert not old.is_running(), f"{name} is still running"
    env = {**outage.stack.env, "DJANGO_SETTINGS_MODULE": SETTINGS[PROCESS_SERVICE[name]]}
    argv = _argv(old)
    new = start_process(f"{name}.{uuid.uuid4().hex[:6]}", argv, env=env, log_dir=outage.stack.work_dir / "logs")
    new.name = name
    processes[processes.index(old)] = new
    return new


def start_nats(argv: list[str], log_dir: Path) -> StackProcess:
    """nats-server with these flags, once it greets clients on its port.

    The port comes from devstack's range below the ephemeral one, so an outgoing connection does not take it while
    the server is down; if something holds it all the same, the start is tried again until the deadline.
    """
    port = int(argv[argv.index("-p") + 1])
    deadline = time.monotonic() + NATS_READY_SECONDS
    while True:
        process = start_process(f"nats.{uuid.uuid4().hex[:6]}", argv, env=os.environ, log_dir=log_dir)
        process.name = "nats"
        while process.is_running() and not _serving(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.is_running() and _serving(port):
            return process
        stop_processes([process])
        if time.monotonic() > deadline:
            raise StackError(
                f"nats-server did not start on :{port} within {NATS_READY_SECONDS:.0f} s:\n{process.tail()}"
            )
        time.sleep(0.5)


def restart_nats(outage: OutageStack) -> None:
    """The same nats-server binary and flags again: same port, same JetStream store directory."""
    old = outage.nats
    assert not old.is_running(), "nats-server is still running"
    outage.nats = start_nats(_argv(old), outage.log_dir)


def _argv(process: StackProcess) -> list[str]:
    args = process.popen.args
    assert isinstance(args, list), f"{process.name} was not started from an argument list"
    return [str(arg) for arg in args]


def _serving(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        return sock.recv(4096).startswith(b"INFO ")
    return False


def assert_recovered(outage: OutageStack, pids_before: dict[str, int], restarted: str | None = None) -> None:
    """Every process but `restarted` is the one that ran before the outage, alive; both services answer over NATS."""
    pids_after = outage.pids()
    for name, pid in pids_before.items():
        if name != restarted:
            assert pids_after[name] == pid, f"{name} was restarted"
    wait_until_healthy(outage.stack.nats_url, outage.stack.processes, timeout=30.0)


# --- sign-ups -----------------------------------------------------------------------------------------------------


def sign_up_through_gateway(count: int = SIGNUPS, *, workers: int = 4) -> list[Account]:
    """`count` sign-ups by POST /api/signup, each from a browser of its own; every one must be accepted (200)."""
    accounts = [new_account() for _ in range(count)]

    def one(account: Account) -> int:
        return sign_up(Api(), account).status_code

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="outage-signup") as pool:
        statuses = Counter(pool.map(one, accounts))
    assert statuses == {200: count}, f"sign-up answers: {dict(statuses)}"
    return accounts


def sign_up_in_auth_service(outage: OutageStack, count: int = SIGNUPS) -> list[Account]:
    """`count` sign-ups accepted by the auth service itself: its signup handler's service call, in one process.

    The gateway cannot be used while NATS is down (it reaches the auth service over NATS); the auth service
    accepts a sign-up with this same call whenever it answers one.
    """
    accounts = [new_account() for _ in range(count)]
    payload = orjson.dumps(
        [{"name": a.name, "username": a.username, "email": a.email, "password": a.password} for a in accounts]
    ).decode()
    code = (
        "import json\n"
        "from auth_service.accounts.services.registration import user_register\n"
        f"accounts = json.loads({payload!r})\n"
        "for account in accounts:\n"
        "    user_register(**account)\n"
        "print('registered', len(accounts))\n"
    )
    output = outage.stack.manage("auth", "shell", "-c", code)
    assert f"registered {count}" in output, output
    return accounts


# --- what the databases and the stream say ------------------------------------------------------------------------


def query(outage: OutageStack, service: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    env = outage.stack.env
    with psycopg.connect(env["DATABASE_URL"], dbname=f"{DB_PREFIX}{service}", connect_timeout=5) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def user_ids(outage: OutageStack, accounts: Sequence[Account]) -> list[str]:
    """The auth service's ids of these accounts; each must exist exactly once."""
    rows = query(
        outage, "auth", "SELECT email, id::text FROM accounts_user WHERE email = ANY(%s)", [[a.email for a in accounts]]
    )
    found = sorted(email for email, _ in rows)
    assert found == sorted(a.email for a in accounts), f"{len(found)} of {len(accounts)} accounts in the auth service"
    return [str(user_id) for _, user_id in rows]


@dataclass(frozen=True)
class Pipeline:
    """auth outbox → JetStream → main_api, for one set of users."""

    users: int
    # event id → (published?, failed attempts), for every outbox row of these users.
    outbox: dict[str, tuple[bool, int]]
    main_users: int
    main_emails: int
    inbox: int
    dead_letters: int

    @property
    def published(self) -> int:
        return sum(1 for published, _ in self.outbox.values() if published)

    @property
    def attempted(self) -> int:
        return sum(1 for _, attempts in self.outbox.values() if attempts > 0)

    @property
    def delivered(self) -> bool:
        n = self.users
        return len(self.outbox) == n and self.published == n and self.main_users == n and self.inbox == n

    def __str__(self) -> str:
        return (
            f"users {self.users}: outbox rows {len(self.outbox)} (published {self.published}, "
            f"tried and failed {self.attempted}), main_api users {self.main_users} (by e-mail {self.main_emails}), "
            f"inbox {self.inbox}, dead letters {self.dead_letters}"
        )


def pipeline(outage: OutageStack, ids: Sequence[str], emails: Sequence[str]) -> Pipeline:
    outbox = {
        str(event_id): (bool(published), int(attempts))
        for event_id, published, attempts in query(
            outage,
            "auth",
            "SELECT event_id::text, published_at IS NOT NULL, attempts FROM outbox_outboxevent "
            "WHERE aggregate_id::text = ANY(%s)",
            [list(ids)],
        )
    }
    main_users = query(outage, "main", "SELECT count(*) FROM users_user WHERE id::text = ANY(%s)", [list(ids)])
    main_emails = query(outage, "main", "SELECT count(*) FROM users_user WHERE email = ANY(%s)", [list(emails)])
    inbox = query(outage, "main", "SELECT count(*) FROM inbox_inboxmessage WHERE message_id = ANY(%s)", [list(outbox)])
    dead = query(outage, "main", "SELECT count(*) FROM inbox_deadletter")
    return Pipeline(
        users=len(ids),
        outbox=outbox,
        main_users=int(main_users[0][0]),
        main_emails=int(main_emails[0][0]),
        inbox=int(inbox[0][0]),
        dead_letters=int(dead[0][0]),
    )


def wait_for(
    outage: OutageStack,
    ids: Sequence[str],
    emails: Sequence[str],
    condition: Callable[[Pipeline], bool],
    what: str,
    *,
    stopped: Sequence[str] = (),
    timeout: float = CONVERGE_SECONDS,
) -> Pipeline:
    """Poll the pipeline until `condition` holds; fail with its state and the logs if it does not in time, or at
    once if a process other than the `stopped` ones is not running."""
    deadline = time.monotonic() + timeout
    while True:
        state = pipeline(outage, ids, emails)
        if condition(state):
            return state
        dead = [p.name for p in [*outage.stack.processes, outage.nats] if not p.is_running() and p.name not in stopped]
        if time.monotonic() > deadline or dead:
            tails = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in [*outage.stack.processes, outage.nats])
            raise AssertionError(f"not {what} within {timeout:.0f} s: {state}; not running: {dead or 'none'}\n{tails}")
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def process_stopped(outage: OutageStack, name: str) -> Iterator[None]:
    """The process `name` is stopped for the block, and started again after it if it is still down."""
    stop(outage.process(name))
    try:
        yield
    finally:
        if not outage.process(name).is_running():
            restart(outage, name)


def signups_held(
    outage: OutageStack,
    condition: Callable[[Pipeline], bool],
    what: str,
    *,
    stopped: str,
    timeout: float = CONVERGE_SECONDS,
) -> tuple[list[Account], list[str], Pipeline]:
    """Sign up through the gateway while `stopped` is down and wait until `condition` says where they are held:
    the accounts, their user ids and the pipeline's state then."""
    accounts = sign_up_through_gateway()
    ids = user_ids(outage, accounts)
    emails = [a.email for a in accounts]
    return accounts, ids, wait_for(outage, ids, emails, condition, what, stopped=[stopped], timeout=timeout)


def assert_delivered_once(outage: OutageStack, accounts: Sequence[Account], ids: Sequence[str]) -> Pipeline:
    """Every user in main_api exactly once, one inbox row per event, no dead letter, each event once in the stream."""
    emails = [a.email for a in accounts]
    state = wait_for(outage, ids, emails, lambda s: s.delivered, "delivered")
    assert len(state.outbox) == SIGNUPS, f"one outbox row per sign-up expected: {state}"
    assert state.main_users == state.main_emails == SIGNUPS, f"each user once in main_api expected: {state}"
    assert state.inbox == SIGNUPS, f"one inbox row per event expected: {state}"
    assert state.dead_letters == 0, f"dead letters in main_api: {state}"
    copies = asyncio.run(stream_copies(outage.stack.nats_url, outage.stream))
    twice = {event_id: n for event_id, n in copies.items() if n != 1}
    assert not twice, f"events not exactly once in the stream: {twice}"
    missing = [event_id for event_id in state.outbox if event_id not in copies]
    assert not missing, f"{len(missing)} published events not in the stream, e.g. {missing[:3]}"
    # Nothing in the stream that the outbox did not publish, and nothing published that the stream lost.
    published = query(outage, "auth", "SELECT event_id::text FROM outbox_outboxevent WHERE published_at IS NOT NULL")
    assert set(copies) == {str(row[0]) for row in published}, "the stream and the published outbox rows differ"
    return state


async def stream_copies(nats_url: str, stream: str) -> Counter[str]:
    """Nats-Msg-Id → number of messages carrying it, over the whole stream."""
    nc = await open_connection(nats_url, name="pytest-outages", connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=5)
        state = (await js.stream_info(stream)).state
        copies: Counter[str] = Counter()
        for seq in range(state.first_seq, state.last_seq + 1):
            with contextlib.suppress(NotFoundError):  # a deleted sequence number
                message = await js.get_msg(stream, seq)
                copies[(message.headers or {}).get("Nats-Msg-Id", f"no id at {seq}")] += 1
        return copies
    finally:
        await nc.close()


def warm_up(outage: OutageStack) -> None:
    """One sign-up through the whole pipeline, so every process has its connections up before a fault."""
    account = new_account()
    assert sign_up(Api(), account).status_code == 200
    ids = user_ids(outage, [account])
    eventually(lambda: _assert_in_main(outage, ids), timeout=CONVERGE_SECONDS)


def _assert_in_main(outage: OutageStack, ids: Sequence[str]) -> None:
    rows = query(outage, "main", "SELECT count(*) FROM users_user WHERE id::text = ANY(%s)", [list(ids)])
    assert int(rows[0][0]) == len(ids)
