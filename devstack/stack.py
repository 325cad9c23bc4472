"""The servers of one profile together: started, reused, or taken from *_URL; and stopped."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from devstack.layout import PG_SUPERUSER, PROFILES, REPO_ROOT, DevStackError, Layout, StackEnv
from devstack.procs import choose_port, port_is_free, write_pid
from devstack.servers import ManagedServer, NatsServer, PostgresServer, RedisServer

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
