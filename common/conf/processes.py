"""The processes of the stack, listed once (SPEC §1).

`make run` (devstack/run.py) starts them from this list, the image's entrypoint runs one of them by name
(`python -m common.conf.processes NAME`), and a test holds docker-compose.yml to the same names.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["http", "bridge", "worker"]


@dataclass(frozen=True)
class Service:
    """One Django project: its short name, the package with its wsgi.py and settings, and its entry point."""

    name: str
    package: str
    manage: str
    port: int


GATEWAY = Service("gateway", "gateway", "manage_gateway.py", 8000)
AUTH = Service("auth", "auth_service", "manage_auth.py", 8001)
MAIN = Service("main", "main_api", "manage_main.py", 8002)
SERVICES = (GATEWAY, AUTH, MAIN)


@dataclass(frozen=True)
class Process:
    """A long-running process of one service. `beat`: the Celery worker that also schedules (exactly one runs)."""

    name: str
    service: Service
    kind: Kind
    beat: bool = False


PROCESSES = (
    Process("gateway", GATEWAY, "http"),
    Process("auth-http", AUTH, "http"),
    Process("main-http", MAIN, "http"),
    Process("auth-bridge", AUTH, "bridge"),
    Process("main-bridge", MAIN, "bridge"),
    Process("auth-worker", AUTH, "worker"),
    Process("auth-worker-beat", AUTH, "worker", beat=True),
)
BY_NAME = {process.name: process for process in PROCESSES}


@dataclass(frozen=True)
class Options:
    """Where and how the processes run: the image's defaults, or what `make run` gives them."""

    bin_dir: Path
    host: str = "0.0.0.0"  # noqa: S104 - in a container the gateway must be reachable from outside it
    http_workers: str = "2"
    worker_concurrency: str = "4"
    log_level: str = "info"
    static_root: Path = Path("var/static")
    beat_schedule: Path = Path("/tmp/celerybeat-schedule")  # noqa: S108 - the container's own, not shared


def argv(process: Process, options: Options, *, port: int | None = None, instance: str | None = None) -> list[str]:
    """The command line of one process."""
    python = str(options.bin_dir / "python")
    if process.kind == "http":
        return [
            str(options.bin_dir / "granian"),
            "--interface", "wsgi", f"{process.service.package}.wsgi:application",
            "--host", options.host, "--port", str(port or process.service.port),
            "--workers", options.http_workers,
            "--blocking-threads", "4",
            "--static-path-route", "/static",
            "--static-path-mount", str(options.static_root / process.service.name),
            "--no-ws",
        ]  # fmt: skip
    if process.kind == "bridge":
        return [python, process.service.manage, "nats_bridge"]
    # `python -m common.conf.worker` is `celery worker` without the rest of the celery CLI (common/conf/worker.py).
    command = [
        python, "-m", "common.conf.worker", "-A", process.service.package,
        "--pool", "threads", "--concurrency", options.worker_concurrency, "-l", options.log_level,
    ]  # fmt: skip
    if instance:
        command += ["-n", f"{instance}@%h"]
    if process.beat:
        # Exactly one scheduler: a thread of this worker (common/conf/beat.py), not a process of its own.
        command += ["--beat-thread", "-s", str(options.beat_schedule)]
    return command


def main(args: Sequence[str]) -> None:
    """Replace this process with the named one, configured from the environment (the image's entrypoint)."""
    if len(args) != 1 or args[0] not in BY_NAME:
        raise SystemExit(f"usage: python -m common.conf.processes {{{','.join(BY_NAME)}}}")
    process = BY_NAME[args[0]]
    options = Options(
        bin_dir=Path(sys.executable).parent,
        http_workers=os.environ.get("HTTP_WORKERS", "2"),
        worker_concurrency=os.environ.get("CELERY_CONCURRENCY", "4"),
        static_root=Path(os.environ.get("STATIC_ROOT_BASE", "var/static")),
    )
    command = argv(process, options)
    os.execv(command[0], command)  # noqa: S606 - a fixed argv built above


if __name__ == "__main__":
    main(sys.argv[1:])
