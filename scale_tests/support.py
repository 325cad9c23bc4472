"""What the scale tests observe a multi-instance stack with: per-process log counts, its databases, real gateways."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg

from devstack.testing.stack import (
    MANAGE,
    REPO_ROOT,
    RunningStack,
    StackError,
    StackProcess,
    free_port,
    harness_env,
    http_env,
    running_stack,
    start_process,
    stop_processes,
)

T = TypeVar("T")

DB_PREFIX = "scale_"
STACK_NAME = "scale"
# The harness's own processes; the suite adds a second of each under `<role>-2`.
ROLES = ("auth-bridge", "main-bridge", "auth-celery")
CELERY_DB = 12
REPORT_PATH = REPO_ROOT / "var" / STACK_NAME / "latest.json"

# What the suite measured, printed at the end of the run and written to REPORT_PATH for docs/SCALING.md.
measurements: dict[str, dict[str, Any]] = {}


def record(section: str, **values: Any) -> None:
    measurements.setdefault(section, {}).update(values)


@dataclass
class ScaledStack:
    """The harness's stack plus a second instance of each role; `pairs[role]` is (first, second)."""

    stack: RunningStack
    pairs: dict[str, tuple[StackProcess, StackProcess]] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.stack.work_dir / "logs"

    def instances(self, role: str) -> tuple[StackProcess, StackProcess]:
        return self.pairs[role]

    def second(self, role: str) -> StackProcess:
        return self.pairs[role][1]

    def extra(self) -> list[StackProcess]:
        return [second for _, second in self.pairs.values()]


# --- the scaled stack --------------------------------------------------------------------------------------------


def _second_instances(log_dir: Path, env: dict[str, str]) -> dict[str, StackProcess]:
    """One more of each role: same settings, queue groups and durable as the harness's first instances."""
    celery = [
        sys.executable, "-m", "celery", "-A", "auth_service", "worker",
        "--pool", "threads", "--concurrency", "4", "-l", "info", "--without-mingle", "--without-gossip",
        "-n", f"scale-2-{os.getpid()}@%h",
    ]  # fmt: skip
    # No -B on this one: beat stays embedded in the harness's worker, exactly one scheduler.
    argv = {
        "auth-bridge": [sys.executable, str(REPO_ROOT / MANAGE["auth"]), "nats_bridge"],
        "main-bridge": [sys.executable, str(REPO_ROOT / MANAGE["main"]), "nats_bridge"],
        "auth-celery": celery,
    }
    started: dict[str, StackProcess] = {}
    for role, command in argv.items():
        started[role] = start_process(f"{role}-2", command, env=harness_env(role, env), log_dir=log_dir)
    return started


def _stop_checked(processes: list[StackProcess], what: str) -> None:
    thaw(processes)
    stuck = stop_processes(processes)
    unclean = [f"{p.name} (exit {p.popen.returncode})" for p in processes if p.popen.returncode != 0]
    if stuck or unclean:
        raise StackError(f"{what} did not stop cleanly on SIGTERM; killed: {stuck}; non-zero exit: {unclean}")


@contextlib.contextmanager
def _celery_broker_of_our_own() -> Iterator[None]:
    """A Redis database for this stack's Celery broker alone, unless E2E_CELERY_BROKER_URL names one.

    The harness defaults every stack to database 13: a worker of another suite's stack on the same Redis (the e2e
    or fault suites, run at the same time) would take this stack's tasks and run them against its own databases.
    """
    if os.environ.get("E2E_CELERY_BROKER_URL"):
        yield
        return
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    os.environ["E2E_CELERY_BROKER_URL"] = urlunsplit(parts._replace(path=f"/{CELERY_DB}"))
    try:
        yield
    finally:
        del os.environ["E2E_CELERY_BROKER_URL"]


@contextlib.contextmanager
def scaled_stack() -> Iterator[ScaledStack]:
    """running_stack() on scale_ databases and a private NATS, plus a second auth bridge, main bridge and worker."""
    with _celery_broker_of_our_own(), running_stack(db_prefix=DB_PREFIX, name=STACK_NAME) as stack:
        second = _second_instances(stack.work_dir / "logs", stack.env)
        try:
            for role in ("auth-bridge", "main-bridge"):
                wait_for_log(second[role], '"bridge ready"')
            wait_for_log(second["main-bridge"], '"consumer started"')
            wait_for_log(second["auth-celery"], " ready.")
            first = {process.name: process for process in stack.processes}
            yield ScaledStack(stack=stack, pairs={role: (first[role], proc) for role, proc in second.items()})
        finally:
            _stop_checked(list(second.values()), "second instances")


@dataclass(frozen=True)
class Gateway:
    port: int
    process: StackProcess


@contextlib.contextmanager
def gateway_servers(
    scaled: ScaledStack, *, count: int = 2, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[list[Gateway]]:
    """`count` gateway HTTP servers (granian, production settings) on free loopback ports."""
    server_env = {
        **http_env("gateway", scaled.stack.env),
        "DJANGO_SETTINGS_MODULE": "gateway.settings.base",
        "ALLOWED_HOSTS": "127.0.0.1",
        **(env or {}),
    }
    granian = str(Path(sys.executable).parent / "granian")
    gateways: list[Gateway] = []
    try:
        for index in range(1, count + 1):
            port = free_port()
            argv = [
                granian, "--interface", "wsgi", "gateway.wsgi:application",
                "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--blocking-threads", "4", "--no-ws",
            ]  # fmt: skip
            process = start_process(f"gateway-{index}", argv, env=server_env, log_dir=scaled.log_dir)
            gateways.append(Gateway(port=port, process=process))
        for gateway in gateways:
            wait_http_ready(gateway.port, gateway.process)
        yield gateways
    finally:
        _stop_checked([gateway.process for gateway in gateways], "gateways")


# --- logs: every bridge writes one JSON line per request (`nats request`) and per applied event ------------------


def log_records(process: StackProcess) -> list[dict[str, Any]]:
    """The JSON log lines of a process; Celery's banner and any other plain text line are skipped."""
    records: list[dict[str, Any]] = []
    for line in process.log_path.read_bytes().splitlines():
        if not line.startswith(b"{"):
            continue
        try:
            record_ = orjson.loads(line)
        except orjson.JSONDecodeError:  # a line cut short by a crash or a still-running write
            continue
        if isinstance(record_, dict):
            records.append(record_)
    return records


def served_requests(processes: Iterable[StackProcess], *, prefix: str, subject: str) -> dict[str, list[str]]:
    """request id → names of the processes that answered it on `subject`, for the ids starting with `prefix`.

    The gateway passes a caller's X-Request-Id over NATS and each bridge logs it with the request, so a test
    that tags its requests can tell which instance served each one, including requests answered after the
    caller gave up on them.
    """
    found: dict[str, list[str]] = defaultdict(list)
    for process in processes:
        for r in log_records(process):
            request_id = str(r.get("request_id") or "")
            if r.get("msg") == "nats request" and r.get("subject") == subject and request_id.startswith(prefix):
                found[request_id].append(process.name)
    return dict(found)


def applications(processes: Iterable[StackProcess]) -> dict[str, list[tuple[str, str]]]:
    """message id → [(process, outcome)] over every `message applied` line of the main bridges."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for process in processes:
        for r in log_records(process):
            if r.get("msg") == "message applied":
                found[str(r.get("message_id"))].append((process.name, str(r.get("outcome"))))
    return dict(found)


def wait_for_log(process: StackProcess, needle: str, *, timeout: float = 60.0) -> None:
    """Until `needle` appears in the process's log; a process that exits meanwhile fails at once."""
    deadline = time.monotonic() + timeout
    while needle not in process.log_path.read_text(errors="replace"):
        if not process.is_running():
            raise StackError(f"{process.name} exited (code {process.popen.returncode}):\n{process.tail()}")
        if time.monotonic() > deadline:
            raise StackError(f"{process.name} did not log {needle!r} within {timeout:.0f} s:\n{process.tail()}")
        time.sleep(0.1)


# --- processes ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def frozen(processes: Sequence[StackProcess]) -> Iterator[float]:
    """SIGSTOP the processes (their whole session) for the block; yields when they were frozen; always thaws."""
    for process in processes:
        os.killpg(process.popen.pid, signal.SIGSTOP)
    since = time.monotonic()
    try:
        yield since
    finally:
        thaw(processes)


def thaw(processes: Sequence[StackProcess]) -> None:
    # Also run at teardown: a stopped process ignores SIGTERM until continued, and would then be killed.
    for process in processes:
        if process.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGCONT)


# --- databases ----------------------------------------------------------------------------------------------------


def query(stack: RunningStack, service: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Read a service's own database directly: the read model and the outbox/inbox are what is under test."""
    with psycopg.connect(stack.env["DATABASE_URL"], dbname=f"{DB_PREFIX}{service}", connect_timeout=5) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def users_by_email(stack: RunningStack, service: str, emails: Sequence[str]) -> dict[str, list[str]]:
    """email → ids of the live (not deleted) users holding it, in the auth database or main_api's read model."""
    if service == "auth":
        sql = "SELECT email, id::text FROM accounts_user WHERE email = ANY(%s)"
    else:
        sql = "SELECT email, id::text FROM users_user WHERE email = ANY(%s) AND NOT is_deleted"
    found: dict[str, list[str]] = defaultdict(list)
    for email, user_id in query(stack, service, sql, [list(emails)]):
        found[str(email)].append(str(user_id))
    return dict(found)


def outbox_events(stack: RunningStack, user_ids: Sequence[str]) -> dict[str, bool]:
    """event id → published?, for every outbox row of these users."""
    rows = query(
        stack,
        "auth",
        "SELECT event_id::text, published_at IS NOT NULL FROM outbox_outboxevent WHERE aggregate_id::text = ANY(%s)",
        [list(user_ids)],
    )
    return {str(event_id): bool(published) for event_id, published in rows}


def inbox_ids(stack: RunningStack, message_ids: Sequence[str]) -> list[str]:
    rows = query(
        stack, "main", "SELECT message_id FROM inbox_inboxmessage WHERE message_id = ANY(%s)", [list(message_ids)]
    )
    return [str(row[0]) for row in rows]


# --- load ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    status: int
    seconds: float


def timed(call: Callable[[], int]) -> Timed:
    started = time.monotonic()
    status = call()
    return Timed(status=status, seconds=time.monotonic() - started)


def concurrently(calls: Sequence[Callable[[], T]], *, workers: int = 8) -> list[T]:
    """Run the calls on a bounded pool; results in the order of the calls, the first exception re-raised."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scale-load") as pool:
        return list(pool.map(lambda call: call(), calls))


def statuses(results: Iterable[Timed]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for result in results:
        counts[result.status] += 1
    return dict(sorted(counts.items()))


# --- a browser against a real gateway over HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


class Browser:
    """Keeps the cookies a gateway sets (whichever instance set them) and sends them to every instance."""

    def __init__(self, *, user_agent: str = "scale-browser/1.0") -> None:
        self.cookies: dict[str, str] = {}
        self.access_token: str | None = None
        self.user_agent = user_agent

    def call(
        self, port: int, method: str, path: str, body: Any = None, *, bearer: bool = True, csrf_cookie: str = ""
    ) -> Reply:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if bearer and self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        if csrf_cookie and self.cookies.get(csrf_cookie):
            headers["x-csrf-token"] = self.cookies[csrf_cookie]
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            raw = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                self._remember(header)
        finally:
            conn.close()
        return Reply(status=response.status, body=json.loads(raw) if raw.strip() else None)

    def _remember(self, header: str) -> None:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            if morsel.value and morsel["max-age"] != "0":
                self.cookies[name] = morsel.value
            else:  # a clearing Set-Cookie (empty value, Max-Age=0)
                self.cookies.pop(name, None)


def wait_http_ready(port: int, process: StackProcess, *, timeout: float = 60.0) -> None:
    """Until GET /readyz answers 200 (the gateway reached Redis and both services over NATS)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.is_running():
            raise StackError(f"{process.name} exited (code {process.popen.returncode}):\n{process.tail()}")
        try:
            reply = Browser().call(port, "GET", "/readyz", bearer=False)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last = repr(exc)
        else:
            if reply.status == 200:
                return
            last = f"{reply.status} {reply.body}"
        time.sleep(0.2)
    raise StackError(f"{process.name} not ready on :{port} within {timeout:.0f} s ({last}):\n{process.tail()}")


def write_report() -> Path | None:
    if not measurements:
        return None
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(
        json.dumps({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measurements}, indent=2)
    )
    return REPORT_PATH
