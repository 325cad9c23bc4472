"""Process handles for fault injection: freeze, thaw, kill and restart, and the memory of a process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from devstack.layout import Layout
from devstack.procs import read_pid, write_pid
from devstack.servers import NatsServer
from devstack.testing.stack import StackProcess, start_process

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = "verify"


class ProcessGone(RuntimeError):
    """A process verify needs is not running (it died, or its pid file is stale)."""


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants, parent first; empty if it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@dataclass(frozen=True)
class Memory:
    """A process tree's memory in bytes. `rss` sums each process's resident set, so pages the processes share
    (PostgreSQL's shared buffers, a forked worker's copy-on-write pages, the binary and libraries other
    programs map too) count once per process; `uss` counts only pages no other process maps right now, so it also
    grows when another program running the same binary exits (its text pages become ours alone); `dirty`
    (Private_Dirty) counts only pages the process wrote and nobody else maps, which is where a leak grows,
    whoever else starts or stops on the machine."""

    rss: int = 0
    uss: int = 0
    dirty: int = 0


def tree_memory(pid: int) -> Memory:
    """Memory of a process and its descendants (zero if gone)."""
    rss = uss = dirty = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, OSError):
            info = proc.memory_full_info()
            rss += info.rss
            uss += info.uss
            dirty += _private_dirty(proc.pid)
    return Memory(rss=rss, uss=uss, dirty=dirty)


def _private_dirty(pid: int) -> int:
    """Private_Dirty of /proc/<pid>/smaps_rollup, in bytes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) * 1024
    return 0


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class Target:
    """Something verify can freeze or kill: a devstack server or a process of the e2e stack."""

    name: str
    # Pids to signal, parent first. Called at fault time: PostgreSQL forks a backend per connection.
    pids: Callable[[], list[int]]
    # SIGKILL the whole target, and start it again afterwards; None when verify cannot restart it.
    kill: Callable[[], None] | None = None
    start: Callable[[], None] | None = None
    frozen: list[int] = field(default_factory=list)

    def freeze(self) -> None:
        """SIGSTOP every process of the target; the parent first, so it cannot fork an unfrozen child meanwhile."""
        pids = self.pids()
        if not pids:
            raise ProcessGone(f"{self.name} is not running")
        self.frozen = pids
        _signal_all(pids, signal.SIGSTOP)
        # A child forked between listing and stopping the parent would escape; list again once it is stopped.
        late = [pid for pid in self.pids() if pid not in self.frozen]
        _signal_all(late, signal.SIGSTOP)
        self.frozen += late

    def thaw(self) -> None:
        """SIGCONT what freeze() stopped, children first, so the parent finds them running when it resumes."""
        _signal_all(list(reversed(self.frozen)), signal.SIGCONT)
        self.frozen = []

    def is_alive(self) -> bool:
        pids = self.pids()
        if not pids:
            return False
        try:
            return psutil.Process(pids[0]).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def memory(self) -> Memory:
        pids = self.pids()
        return tree_memory(pids[0]) if pids else Memory()


@contextlib.contextmanager
def frozen(target: Target) -> Iterator[None]:
    """Keep the target stopped for the block; it is thawed however the block ends."""
    target.freeze()
    try:
        yield
    finally:
        target.thaw()


# --- devstack servers (profile "verify") -----------------------------------------------------------------------


def _layout() -> Layout:
    return Layout(REPO_ROOT, PROFILE)


def server_pid(name: str) -> int | None:
    """The pid of the verify profile's server (postgres, redis, nats) from var/verify/run/<name>.pid."""
    pid = read_pid(_layout().pid_file(name))
    if pid is None or not psutil.pid_exists(pid):
        return None
    return pid


def server_target(name: str) -> Target:
    """A devstack server; PostgreSQL's backends detach into sessions of their own, so its tree is listed."""

    def pids() -> list[int]:
        pid = server_pid(name)
        return [proc.pid for proc in tree(pid)] if pid is not None else []

    if name != NatsServer.name:
        return Target(name=name, pids=pids)
    nats = _NatsRestart()
    return Target(name=name, pids=pids, kill=nats.kill, start=nats.start)


@dataclass
class _NatsRestart:
    """SIGKILL nats-server, then start it again with the same command line, data dir and log.

    The new pid goes to the pid file, so `devstack exec` still stops the server at the end.
    """

    argv: list[str] = field(default_factory=list)
    cwd: str = ""

    def kill(self) -> None:
        pid = server_pid(NatsServer.name)
        if pid is None:
            raise ProcessGone("nats is not running")
        proc = psutil.Process(pid)
        self.argv, self.cwd = proc.cmdline(), proc.cwd()
        proc.kill()
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
            proc.wait(10)

    def start(self) -> None:
        layout = _layout()
        with (layout.var_dir / f"{NatsServer.name}.log").open("ab") as log:
            popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
            )
        write_pid(layout.pid_file(NatsServer.name), popen.pid)
        NatsServer(layout, _nats_ports(self.argv)).wait_ready(time.monotonic() + 30)


def _nats_ports(argv: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for flag, key in (("-p", "nats"), ("-m", "nats_monitor")):
        if flag in argv:
            ports[key] = int(argv[argv.index(flag) + 1])
    return ports


# --- processes of the e2e stack and verify's own HTTP servers ----------------------------------------------------


@dataclass
class Managed:
    """A child process verify (or the e2e harness) started: restartable with the same argv and environment."""

    process: StackProcess
    env: Mapping[str, str]
    log_dir: Path
    # The list that owns the StackProcess (the harness's), updated in place when the process is replaced.
    owner: list[StackProcess]

    @property
    def name(self) -> str:
        return self.process.name

    def target(self) -> Target:
        def pids() -> list[int]:
            if not self.process.is_running():
                return []
            return [proc.pid for proc in tree(self.process.popen.pid)]

        return Target(name=self.name, pids=pids, kill=self.kill, start=self.start)

    def kill(self) -> None:
        """SIGKILL the process group: a Celery worker's embedded beat goes with it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.popen.pid, signal.SIGKILL)
        self.process.popen.wait(10)

    def start(self) -> None:
        """A fresh process with the same argv and environment, in the killed one's place in its owner's list."""
        old = self.process
        argv = [str(arg) for arg in old.popen.args] if isinstance(old.popen.args, list) else [str(old.popen.args)]
        # A log of its own: the harness opens logs with "wb", and the killed process's log is evidence.
        new = start_process(f"{old.name}.{int(time.time())}", argv, env=self.env, log_dir=self.log_dir)
        new.name = old.name
        self.owner[self.owner.index(old)] = new
        self.process = new
