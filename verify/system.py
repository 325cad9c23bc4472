"""The system under test: the e2e stack on the verify profile's servers plus the three granian HTTP servers."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.layout import Layout
from devstack.testing.stack import (
    RunningStack,
    StackProcess,
    free_port,
    harness_env,
    http_env,
    running_stack,
    start_process,
    stop_processes,
)
from verify.procs import REPO_ROOT, Managed, Target, server_target

DB_PREFIX = "verify_"
STACK_NAME = "verify"
BIN = Path(sys.executable).parent
# The same modules and settings `make run` serves (devstack/run.py), with debug off.
HTTP_SERVICES = {
    "gateway": ("gateway", "gateway.settings.dev"),
    "auth": ("auth_service", "auth_service.settings.dev"),
    "main": ("main_api", "main_api.settings.dev"),
}
SERVERS = ("nats", "redis", "postgres")
# Throttles protect production from one IP; every verify request comes from 127.0.0.1 on purpose, and the
# throttles have suites of their own. The failed-login cut-off of the auth service stays as it is.
UNTHROTTLED = ",".join(
    f"{scope}.{kind}=1000000/10m"
    for scope in ("signup", "login", "verify-account", "resend-verification", "recover-credentials", "reset-password")
    for kind in ("ip", "account", "account-source")
)
READY_TIMEOUT = 60.0


class SystemUnavailable(RuntimeError):
    """The system under test could not be started or did not become ready."""


def granian_argv(name: str, module: str, port: int) -> list[str]:
    """The argv devstack/run.py gives granian, on a port of our own."""
    static = Layout(REPO_ROOT, "verify").static_dir(name)
    # granian refuses a mount that does not exist; a fresh checkout has had no collectstatic (nor needs one here).
    static.mkdir(parents=True, exist_ok=True)
    return [
        str(BIN / "granian"),
        "--interface", "wsgi", f"{module}.wsgi:application",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
        "--blocking-threads", "4",
        "--static-path-route", "/static",
        "--static-path-mount", str(static),
        "--no-ws",
    ]  # fmt: skip


@dataclass
class System:
    """Handles on every process and server verify exercises."""

    stack: RunningStack
    ports: dict[str, int]
    log_dir: Path
    http: list[StackProcess] = field(default_factory=list)
    managed: dict[str, Managed] = field(default_factory=dict)

    @property
    def gateway(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["gateway"])

    def target(self, name: str) -> Target:
        if name in SERVERS:
            return server_target(name)
        return self.managed[name].target()

    def process_names(self) -> list[str]:
        return [*SERVERS, *self.managed]

    def dead(self) -> list[str]:
        """Names of processes or servers that are not running."""
        return [name for name in self.process_names() if not self.target(name).is_alive()]

    def readiness(self) -> dict[str, int]:
        """The /readyz status of each HTTP service (0 when it does not answer)."""
        return {name: _get_status(port, "/readyz") for name, port in self.ports.items()}

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Seconds until every /readyz answers 200; raises SystemUnavailable after timeout."""
        started = time.monotonic()
        status: dict[str, int] = {}
        while time.monotonic() - started < timeout:
            status = self.readiness()
            if all(code == 200 for code in status.values()):
                return time.monotonic() - started
            time.sleep(0.25)
        raise SystemUnavailable(f"not ready after {timeout:.0f} s: {status}")

    def main_db(self) -> str:
        return f"{DB_PREFIX}main"

    def auth_db(self) -> str:
        return f"{DB_PREFIX}auth"


def _get_status(port: int, path: str, timeout: float = 3.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def _reset_stream(nats_url: str, stream: str) -> None:
    """Delete the identity stream left on the verify NATS by an earlier run.

    The databases are recreated for every run; a stream (and main_api's durable consumer on it) kept from an
    earlier run would replay that run's events into the fresh read model and skew the stream counts.
    """
    from nats.js.errors import NotFoundError

    from common.messaging.client import open_connection

    async def delete() -> None:
        nc = await open_connection(nats_url, name="verify-system", connect_timeout=5, allow_reconnect=False)
        try:
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(delete())


def _prune_old_runs() -> None:
    # Each run keeps its logs (E2E_KEEP) for diagnosis until the next run starts.
    for old in (REPO_ROOT / "var" / STACK_NAME).glob("run-*"):
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def system_under_test() -> Iterator[System]:
    """Start everything on the verify profile's servers; stop it all on exit, servers excepted."""
    for var in ("DATABASE_URL", "REDIS_URL", "NATS_URL"):
        if not os.environ.get(var):
            raise SystemUnavailable(f"{var} is not set: run under `python -m devstack exec --profile verify`")
    nats_url = os.environ["NATS_URL"]
    # The harness would otherwise start a private nats-server; the faults need the one devstack started.
    os.environ["E2E_NATS_URL"] = nats_url
    os.environ["E2E_KEEP"] = "1"
    os.environ.setdefault("THROTTLE_RATES", UNTHROTTLED)
    _prune_old_runs()
    _reset_stream(nats_url, os.environ.get("USER_EVENTS_STREAM", "USERS"))
    with running_stack(db_prefix=DB_PREFIX, name=STACK_NAME) as stack:
        log_dir = stack.work_dir / "logs"
        managed = {
            process.name: Managed(
                process=process,
                env=harness_env(process.name, stack.env),
                log_dir=log_dir,
                owner=stack.processes,
            )
            for process in stack.processes
        }
        ports = {name: free_port() for name in HTTP_SERVICES}
        http: list[StackProcess] = []
        system = System(stack=stack, ports=ports, log_dir=log_dir, http=http, managed=managed)
        try:
            for name, (module, settings) in HTTP_SERVICES.items():
                env = {
                    **http_env(name, stack.env),
                    "DJANGO_SETTINGS_MODULE": settings,
                    "DJANGO_DEBUG": "false",
                    "COOKIE_SECURE": "false",
                    # Production posture: the seed route answers 404 (the harness seeded by command).
                    "SEED_OVER_HTTP": "false",
                }
                process = start_process(
                    f"{name}-http", granian_argv(name, module, ports[name]), env=env, log_dir=log_dir
                )
                http.append(process)
                managed[process.name] = Managed(process=process, env=env, log_dir=log_dir, owner=http)
            system.wait_ready()
            yield system
        finally:
            stuck = stop_processes(http)
            if stuck:
                raise SystemUnavailable(f"HTTP servers did not stop on SIGTERM: {', '.join(stuck)}")
