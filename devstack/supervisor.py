"""A small process supervisor for `make run`: prefixed output, one process group per child, a single-instance lock."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

# Wide enough for names like "gateway-http" so that the bars line up.
PREFIX_WIDTH = 12
_COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
_OWN_COLOUR = "1;31"
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class _Child:
    name: str
    popen: subprocess.Popen[bytes]
    pid_file: Path
    reader: threading.Thread


def exit_status(returncode: int) -> int:
    """A shell-style exit status: 128+N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Supervisor:
    """Runs named children, each in its own process group, and interleaves their output line by line."""

    def __init__(
        self,
        run_dir: Path,
        *,
        out: TextIO | None = None,
        prefix_width: int = PREFIX_WIDTH,
        colour: bool | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self._out = out if out is not None else sys.stdout
        if colour is None:
            colour = self._out.isatty() and not os.environ.get("NO_COLOR")
        self._colour = colour
        self._width = prefix_width
        self._palette = itertools.cycle(_COLOURS)
        self._write_lock = threading.Lock()
        self._children: dict[str, _Child] = {}
        self._force = threading.Event()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._children)

    def pids(self) -> dict[str, int]:
        return {name: child.popen.pid for name, child in self._children.items()}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
    ) -> int:
        """Start a child; env is laid over os.environ. Returns its pid."""
        if name in self._children:
            raise ValueError(f"a child named {name!r} is already running")
        # Without this, a Python child block-buffers its output and lines reach us in bursts.
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            # Own session and group: terminal Ctrl-C reaches only us, and stop_all can signal the child's workers too.
            start_new_session=True,
        )
        assert popen.stdout is not None
        prefix = self._prefix(name, next(self._palette))
        reader = threading.Thread(target=self._pump, args=(popen.stdout, prefix), name=f"pump-{name}", daemon=True)
        pid_file = self.run_dir / f"{name}.pid"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{popen.pid}\n")
        self._children[name] = _Child(name, popen, pid_file, reader)
        reader.start()
        return popen.pid

    def say(self, message: str) -> None:
        """Print a line of the supervisor's own, prefixed like a child's."""
        self._emit(self._prefix("devstack", _OWN_COLOUR), message)

    def poll(self) -> tuple[str, int] | None:
        """The first child that has exited, as (name, returncode), or None."""
        for child in self._children.values():
            code = child.popen.poll()
            if code is not None:
                return child.name, code
        return None

    def wait_forever(self, poll_interval: float = 0.2) -> int:
        """Block until SIGINT/SIGTERM/SIGHUP or a child's death, stop everything, and return an exit status."""
        stop = threading.Event()
        received: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            received.append(signum)
            if stop.is_set():
                # A second Ctrl-C while stopping: stop waiting for graceful exits.
                self._force.set()
            stop.set()

        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
        for sig in _SIGNALS:
            signal.signal(sig, on_signal)
        try:
            while not stop.wait(poll_interval):
                dead = self.poll()
                if dead is not None:
                    name, code = dead
                    self.say(f"{name} {describe_exit(code)}; stopping the others")
                    self.stop_all()
                    return exit_status(code) or 1
            self.say(f"{signal.Signals(received[0]).name} received; stopping {', '.join(self.names) or 'nothing'}")
            self.stop_all()
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM every child's process group, SIGKILL what is left after timeout, remove the pid files."""
        children = list(self._children.values())
        for child in children:
            _signal_group(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(_alive(child) for child in children):
            if time.monotonic() > deadline or self._force.is_set():
                break
            time.sleep(0.05)
        for child in children:
            if _alive(child):
                self.say(f"{child.name} did not stop in time; killing it")
                _signal_group(child.popen.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(5)
            # EOF arrives once every process holding the pipe is gone; the thread then flushes the last lines.
            child.reader.join(2)
            child.pid_file.unlink(missing_ok=True)
            self._children.pop(child.name, None)
        self._force.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def _prefix(self, name: str, colour: str) -> str:
        label = f"{name.ljust(self._width)} |"
        return f"\x1b[{colour}m{label}\x1b[0m " if self._colour else f"{label} "

    def _pump(self, stream: IO[bytes], prefix: str) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self._emit(prefix, raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _emit(self, prefix: str, line: str) -> None:
        # A closed or broken stdout must not kill the pump threads (the children would block on a full pipe).
        with self._write_lock, contextlib.suppress(OSError, ValueError):
            self._out.write(f"{prefix}{line}\n")
            self._out.flush()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(child: _Child) -> bool:
    # The leader is reaped first so that a zombie leader does not count; its group may still hold workers.
    child.popen.poll()
    try:
        os.killpg(child.popen.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- single instance ---------------------------------------------------------------------------------------------

_held_locks: dict[Path, IO[str]] = {}


def run_lock_path(root: Path) -> Path:
    return Path(root).resolve() / "var" / "run" / "devstack-run.lock"


def acquire_run_lock(root: Path) -> bool:
    """Take the `make run` lock for this process's lifetime; False when another process holds it."""
    path = run_lock_path(root)
    if path in _held_locks:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held open until release or exit: the open file is the lock
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return False
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _held_locks[path] = fh
    return True


def run_lock_holder(root: Path) -> int | None:
    """The pid recorded by the current holder of the `make run` lock, if any."""
    try:
        return int(run_lock_path(root).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def release_run_lock(root: Path) -> None:
    fh = _held_locks.pop(run_lock_path(root), None)
    if fh is None:
        return
    with contextlib.suppress(OSError):
        fh.seek(0)
        fh.truncate()
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()
