"""Small process and socket helpers of the devstack: free ports, pid files, stopping a process for sure."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from devstack.layout import RESERVED_PORTS, DevStackError

# Below Linux's ephemeral range (32768-60999), so an outgoing connection is unlikely to sit on a remembered port.
_PORT_RANGE = (20000, 32000)
_STOP_GRACE = 10.0
_LOG_TAIL_LINES = 30


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


def wait_gone(pid: int, popen: subprocess.Popen[bytes] | None, timeout: float) -> bool:
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
        wait_gone(pid, popen, 0)
        return
    if wait_gone(pid, popen, grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, popen, 5)


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
