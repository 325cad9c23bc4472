"""The whole stack as real processes for end-to-end tests: fresh e2e_ databases, both bridges, Celery, mail as files.

Used by a session fixture (see gateway/conftest.py). PostgreSQL and Redis are the ones of DATABASE_URL and
REDIS_URL (databases `e2e_auth` / `e2e_main`, Celery on its own Redis database). NATS is a private nats-server
with JetStream by default: the queue groups `auth`/`main` and the stream `USERS` would otherwise be shared with
any other bridge or consumer on the same server (a developer's `make run`, another suite), which would answer
or consume this stack's requests and events. E2E_NATS_URL names an existing server to use instead,
E2E_CELERY_BROKER_URL another broker, and E2E_KEEP=1 keeps var/e2e/run-*/ (logs, mail), which is otherwise
removed unless the stack failed to start or to stop cleanly.

With http=True the three HTTP servers (granian, as `make run` starts them) run too, on free ports, serving static
files collected into the stack's own work dir; RunningStack.urls has their base URLs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common.conf.nats_trust import OPERATOR, identity_of, write_server_credentials
from common.conf.processes import BY_NAME, PROCESSES, Options
from common.conf.processes import argv as http_argv
from devstack.servers import NatsServer
from devstack.trust import CREDENTIALS_ENV, identity_environ

REPO_ROOT = Path(__file__).resolve().parents[2]
HTTP_PROCESSES = {process.service.name: process for process in PROCESSES if process.kind == "http"}
DB_NAME_PREFIX = "e2e_"
SERVICES = ("auth", "main")
# Deployed-style settings, configured by the environment below. The projects' test settings are made for
# in-process tests (mail kept in memory, Celery tasks run inline), which a multi-process stack cannot use.
SETTINGS = {"auth": "auth_service.settings.base", "main": "main_api.settings.base", "gateway": "gateway.settings.base"}
MANAGE = {"auth": "manage_auth.py", "main": "manage_main.py", "gateway": "manage_gateway.py"}
HTTP_SERVICES = ("gateway", "auth", "main")
# The harness's background processes by name, and the processes of common.conf.processes they are (their identity).
HARNESS_PROCESSES = {"auth-bridge": "auth-bridge", "main-bridge": "main-bridge", "auth-celery": "auth-worker-beat"}
# A Redis database of its own for the broker: a worker of another stack on the same Redis must not take our tasks.
DEFAULT_CELERY_DB = 13
STOP_TIMEOUT = 20.0
_LOG_TAIL = 40


class StackError(RuntimeError):
    """The stack could not be prepared, started or stopped cleanly; the message says which step and why."""


@dataclass
class StackProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = _LOG_TAIL) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"
        return "\n".join(text)


@dataclass
class RunningStack:
    """What tests need from the stack: its NATS URL, the mail directory and the environment of its processes."""

    nats_url: str
    mail_dir: Path
    work_dir: Path
    env: dict[str, str]
    processes: list[StackProcess] = field(default_factory=list)
    # With http=True: "gateway", "auth", "main" → "http://127.0.0.1:<port>".
    urls: dict[str, str] = field(default_factory=dict)

    def manage(self, service: str, *args: str, timeout: float = 120.0) -> str:
        """Run `manage_<service>.py <args>` against the stack's databases; returns its output."""
        return run_manage(service, *args, env=self.env, timeout=timeout)


# --- environment and databases -----------------------------------------------------------------------------------


def _with_database(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def stack_environment(
    *,
    nats_url: str,
    mail_dir: Path,
    base: Mapping[str, str] | None = None,
    db_prefix: str = DB_NAME_PREFIX,
    nats_credentials: str = "",
) -> dict[str, str]:
    """Environment of every stack process; the service picks its settings module per process, and its NATS
    identity (`process_env`); the operator's by default, for the set-up commands."""
    env = dict(os.environ if base is None else base)
    if nats_credentials:
        env[CREDENTIALS_ENV] = nats_credentials
        env.update(identity_environ(OPERATOR, env))
    # A service-specific URL or name would point a process away from the e2e_ databases.
    for service in SERVICES:
        env.pop(f"{service.upper()}_DATABASE_URL", None)
        env.pop(f"{service.upper()}_DB_NAME", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    env.update(
        {
            "DATABASE_URL": env.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
            "REDIS_URL": redis_url,
            "NATS_URL": nats_url,
            "DB_NAME_PREFIX": db_prefix,
            "CELERY_BROKER_URL": env.get("E2E_CELERY_BROKER_URL") or _with_database(redis_url, DEFAULT_CELERY_DB),
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "EMAIL_BACKEND": "auth_service.accounts.mail.DevMailBackend",
            "EMAIL_FILE_PATH": str(mail_dir),
            "DJANGO_DEBUG": "false",
            "LOG_JSON": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def recreate_databases(server_url: str, names: list[str], *, db_prefix: str = DB_NAME_PREFIX) -> None:
    """Drop (disconnecting leftovers of an earlier run) and create each database on the server."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, dbname="postgres", autocommit=True, connect_timeout=10) as conn:
        for name in names:
            if not db_prefix or not name.startswith(db_prefix):
                raise StackError(f"refusing to drop {name!r}: stack databases start with a prefix ({db_prefix!r})")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# --- processes ---------------------------------------------------------------------------------------------------


def _service_env(service: str, env: Mapping[str, str]) -> dict[str, str]:
    return {**env, "DJANGO_SETTINGS_MODULE": SETTINGS[service]}


def process_env(process: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of one process of common.conf.processes: the stack's, with the process's own NATS identity."""
    return {**env, **identity_environ(identity_of(process), env)}


def harness_env(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """A harness process's environment (`auth-bridge`, `main-bridge`, `auth-celery`): its settings and identity."""
    process = BY_NAME[HARNESS_PROCESSES[name]]
    return process_env(process.name, _service_env(process.service.name, env))


def http_env(service: str, env: Mapping[str, str]) -> dict[str, str]:
    """An HTTP server's environment: the identity of the service's HTTP process (`gateway`, `auth-http`...)."""
    return process_env(HTTP_PROCESSES[service].name, env)


def run_manage(service: str, *args: str, env: Mapping[str, str], timeout: float = 120.0) -> str:
    argv = [sys.executable, str(REPO_ROOT / MANAGE[service]), *args]
    try:
        done = subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env=_service_env(service, env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{MANAGE[service]} {' '.join(args)} did not finish in {timeout:.0f} s") from exc
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        raise StackError(f"{MANAGE[service]} {' '.join(args)} failed (exit {done.returncode}):\n{output[-4000:]}")
    return output


def start_process(name: str, argv: list[str], *, env: Mapping[str, str], log_dir: Path) -> StackProcess:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        # A session of its own, so stopping it reaches its children too (Celery's embedded beat).
        popen = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return StackProcess(name=name, popen=popen, log_path=log_path)


def stop_processes(processes: list[StackProcess], timeout: float = STOP_TIMEOUT) -> list[str]:
    """SIGTERM every process, wait up to `timeout` s; returns the names that had to be killed."""
    for process in processes:
        if process.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    stuck: list[str] = []
    for process in processes:
        try:
            process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stuck.append(process.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait(timeout=5)
    return stuck


def free_port() -> int:
    """A loopback TCP port nothing listens on at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_nats_credentials(work_dir: Path) -> str:
    """The seeds a private server trusts: those of the devstack profile when there is one (the test process then
    connects to it as the operator it already is), else a set of its own in the work dir."""
    return os.environ.get(CREDENTIALS_ENV) or str(work_dir / "credentials")


def start_private_nats(work_dir: Path, log_dir: Path, timeout: float = 15.0) -> tuple[str, StackProcess]:
    """A nats-server with JetStream and the deployment's identities and permissions (common/conf/nats_trust.py)."""
    port = free_port()
    store = work_dir / "jetstream"
    store.mkdir()
    config = write_server_credentials(Path(private_nats_credentials(work_dir)))
    argv = [str(NatsServer.binary()), "-c", str(config), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    process = start_process("nats", argv, env=os.environ, log_dir=log_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running():
            raise StackError(f"nats-server exited while starting:\n{process.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            if sock.recv(4096).startswith(b"INFO "):
                return f"nats://127.0.0.1:{port}", process
        time.sleep(0.05)
    stop_processes([process])
    raise StackError(f"nats-server did not answer on port {port} within {timeout:.0f} s:\n{process.tail()}")


def wait_until_healthy(nats_url: str, processes: list[StackProcess], timeout: float = 90.0) -> None:
    """Until `health.auth` and `health.main` answer over NATS; a process that dies meanwhile fails at once."""
    from common.contracts import subjects
    from common.contracts.errors import ServiceError
    from common.messaging.client import NatsClient

    client = NatsClient(nats_url, name="e2e-harness")
    pending = set(SERVICES)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            for process in processes:
                if not process.is_running():
                    raise StackError(f"{process.name} exited (code {process.popen.returncode}):\n{process.tail()}")
            for service in sorted(pending):
                with contextlib.suppress(ServiceError):
                    client.request(subjects.health(service), {}, timeout=1.0)
                    pending.discard(service)
            if pending and time.monotonic() > deadline:
                tails = "\n\n".join(f"--- {p.name}\n{p.tail()}" for p in processes)
                raise StackError(f"no answer on health.{'/'.join(sorted(pending))} within {timeout:.0f} s\n{tails}")
            if pending:
                time.sleep(0.2)
    finally:
        client.close()


# --- the stack ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_stack(
    *, seed: bool = True, db_prefix: str = DB_NAME_PREFIX, name: str = "e2e", http: bool = False
) -> Iterator[RunningStack]:
    """Fresh databases, migrations, streams, bridges and Celery; seeded; stopped (and checked) on exit.

    `db_prefix` and `name` keep concurrent stacks (e2e, fault and scale suites) on separate databases and dirs;
    `http` also starts the gateway's, the auth service's and main_api's HTTP servers.
    """
    var_dir = REPO_ROOT / "var" / name
    var_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="run-", dir=var_dir))
    log_dir = work_dir / "logs"
    mail_dir = work_dir / "mail"
    log_dir.mkdir()
    mail_dir.mkdir()
    processes: list[StackProcess] = []
    nats_process: StackProcess | None = None
    failed = True
    try:
        nats_url = os.environ.get("E2E_NATS_URL", "")
        if not nats_url:
            nats_url, nats_process = start_private_nats(work_dir, log_dir)
        env = stack_environment(
            nats_url=nats_url,
            mail_dir=mail_dir,
            db_prefix=db_prefix,
            nats_credentials=private_nats_credentials(work_dir),
        )
        recreate_databases(env["DATABASE_URL"], [f"{db_prefix}{service}" for service in SERVICES], db_prefix=db_prefix)
        for service in SERVICES:
            run_manage(service, "migrate", "--no-input", env=env)
        _provision_streams(env)
        ports = {service: free_port() for service in HTTP_SERVICES} if http else {}
        if http:
            # Passkeys are bound to the gateway's origin, known only now (browsers refuse an IP as relying party).
            env["WEBAUTHN_ORIGINS"] = ",".join(
                f"http://{host}:{ports['gateway']}" for host in ("localhost", "127.0.0.1")
            )
            _collect_static(env, work_dir)
        celery = [
            sys.executable, "-m", "celery", "-A", "auth_service", "worker", "-B",
            "--pool", "threads", "--concurrency", "4", "-l", "info", "--without-mingle", "--without-gossip",
            "-n", f"e2e-{os.getpid()}@%h", "-s", str(work_dir / "celerybeat-schedule"),
        ]  # fmt: skip
        for name, argv in (
            ("auth-bridge", _manage_argv("auth", "nats_bridge")),
            ("main-bridge", _manage_argv("main", "nats_bridge")),
            ("auth-celery", celery),
        ):
            processes.append(start_process(name, argv, env=harness_env(name, env), log_dir=log_dir))
        for service, port in ports.items():
            options = Options(
                bin_dir=Path(sys.executable).parent,
                host="127.0.0.1",
                http_workers="1",
                static_root=_static_dir(work_dir, service).parent,
            )
            argv = http_argv(HTTP_PROCESSES[service], options, port=port)
            processes.append(
                start_process(f"{service}-http", argv, env=_http_env(service, env, work_dir), log_dir=log_dir)
            )
        wait_until_healthy(nats_url, processes)
        urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
        wait_until_serving(urls, processes)
        if seed:
            run_manage("auth", "seed", env=env)
        yield RunningStack(
            nats_url=nats_url, mail_dir=mail_dir, work_dir=work_dir, env=env, processes=processes, urls=urls
        )
        failed = False
    finally:
        # The services first, while NATS is still there for them to drain to; then NATS.
        stuck = stop_processes(processes)
        if nats_process is not None:
            stuck += stop_processes([nats_process])
        unclean = [f"{p.name} (exit {p.popen.returncode})" for p in processes if p.popen.returncode != 0]
        if not failed and not stuck and not unclean and not os.environ.get("E2E_KEEP"):
            shutil.rmtree(work_dir, ignore_errors=True)
    if stuck or unclean:
        raise StackError(
            f"stack processes did not stop cleanly on SIGTERM within {STOP_TIMEOUT:.0f} s; "
            f"killed: {', '.join(stuck) or 'none'}; non-zero exit: {', '.join(unclean) or 'none'}; logs in {log_dir}"
        )


def _static_dir(work_dir: Path, service: str) -> Path:
    return work_dir / "static" / service


def _http_env(service: str, env: Mapping[str, str], work_dir: Path) -> dict[str, str]:
    return {**http_env(service, env), "STATIC_ROOT": str(_static_dir(work_dir, service))}


def _collect_static(env: Mapping[str, str], work_dir: Path) -> None:
    """collectstatic of the three services side by side, into the work dir (never into a `make run`'s var/static)."""
    with ThreadPoolExecutor(max_workers=len(HTTP_SERVICES)) as pool:
        jobs = [
            pool.submit(
                run_manage, service, "collectstatic", "--no-input", "-v0", env=_http_env(service, env, work_dir)
            )
            for service in HTTP_SERVICES
        ]
        for job in jobs:
            job.result()


def wait_until_serving(urls: Mapping[str, str], processes: list[StackProcess], timeout: float = 60.0) -> None:
    """Until GET /healthz answers 200 on every URL; a process that dies meanwhile fails at once."""
    pending = dict(urls)
    deadline = time.monotonic() + timeout
    while pending:
        for process in processes:
            if not process.is_running():
                raise StackError(f"{process.name} exited (code {process.popen.returncode}):\n{process.tail()}")
        for service, url in sorted(pending.items()):
            # Refused while starting, HTTPError (an OSError too) while not yet healthy: try again.
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as response,  # noqa: S310 - our own server
            ):
                if response.status == 200:
                    del pending[service]
        if pending and time.monotonic() > deadline:
            tails = "\n\n".join(f"--- {p.name}\n{p.tail()}" for p in processes if p.name.endswith("-http"))
            raise StackError(
                f"no answer on {', '.join(sorted(pending.values()))}/healthz within {timeout:.0f} s\n{tails}"
            )
        if pending:
            time.sleep(0.1)


def _manage_argv(service: str, *args: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / MANAGE[service]), *args]


def _provision_streams(env: Mapping[str, str]) -> None:
    try:
        run_manage("main", "provision_streams", env=env)
    except StackError as exc:
        raise StackError(
            "`manage_main.py provision_streams` failed; it creates the USERS stream and main_api's consumer and "
            f"is required before the stack can run.\n{exc}"
        ) from exc
