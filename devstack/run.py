"""`make run`: migrate, provision, seed, then start every process of every service and print the banner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from common.conf.nats_trust import OPERATOR, identity_of
from common.conf.processes import AUTH, GATEWAY, MAIN, PROCESSES, Options, Process, Service, argv
from devstack.layout import Layout, StackEnv
from devstack.supervisor import Supervisor
from devstack.trust import identity_environ

ROOT = Path(__file__).resolve().parents[1]


PORT_BASE = int(os.environ.get("RUN_PORT_BASE", "8000"))
HOST = os.environ.get("RUN_HOST", "127.0.0.1")
# SCALE=N starts N instances of every gateway, bridge and Celery worker (beat stays single).
SCALE = max(1, int(os.environ.get("SCALE", "1") or "1"))


def dev_settings(service: Service) -> str:
    return f"{service.package}.settings.dev"


def port(service: Service) -> int:
    """Each service's HTTP port, counted from RUN_PORT_BASE in the order of the image's ports (8000, 8001, 8002)."""
    return PORT_BASE + service.port - GATEWAY.port


def instance_name(base: str, index: int) -> str:
    return base if index == 0 else f"{base}-{index + 1}"


def gateway_ports() -> list[int]:
    """The first gateway keeps its port; extra instances listen on PORT_BASE+10, +11, ..."""
    return [port(GATEWAY)] + [PORT_BASE + 10 + i for i in range(SCALE - 1)]


def layout(stack: StackEnv) -> Layout:
    return Layout(ROOT, stack.profile)


def _env(stack: StackEnv, service: Service, identity: str = OPERATOR) -> dict[str, str]:
    """A process's environment; `identity` picks its NATS credentials (set-up commands act as the operator)."""
    env = {**os.environ, **stack.as_environ()}
    env.update(identity_environ(identity, env))
    env["STATIC_ROOT"] = str(layout(stack).static_dir(service.name))
    env["EMAIL_FILE_PATH"] = str(layout(stack).mail_dir)
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get(
        f"{service.name.upper()}_SETTINGS", f"{service.package}.settings.dev"
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    # glibc lets threads that malloc at once use up to 8 arenas per core, and each arena keeps what it once held: the
    # auth bridge's handler threads (argon2id: 19 MiB per hash) peaked at 248 MiB resident under the bench load with
    # the default, 171 MiB with two. Idle memory is the same either way; the threads mostly wait on I/O or the GIL.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    return env


def _manage(stack: StackEnv, service: Service, *args: str) -> None:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, service.manage, *args],
        cwd=ROOT,
        env=_env(stack, service),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"{service.manage} {' '.join(args)} failed (exit {result.returncode})")
    print(f"  {service.manage} {' '.join(args)}: ok ({time.perf_counter() - started:.1f}s)", flush=True)


def prepare(stack: StackEnv) -> None:
    """Everything before the processes start: schema, streams, signing keys, seed data, static files."""
    print("preparing: migrations, streams, signing keys, seed", flush=True)
    _parallel(
        [
            (AUTH, ("migrate", "--noinput")),
            (MAIN, ("migrate", "--noinput")),
            (MAIN, ("provision_streams",)),
            (AUTH, ("collectstatic", "--noinput", "-v0")),
            (MAIN, ("collectstatic", "--noinput", "-v0")),
            (GATEWAY, ("collectstatic", "--noinput", "-v0")),
        ],
        stack,
    )
    _parallel([(AUTH, ("rotate_keys", "--if-missing")), (AUTH, ("seed",)), (MAIN, ("seed",))], stack)


def _parallel(jobs: list[tuple[Service, tuple[str, ...]]], stack: StackEnv) -> None:
    """Run independent management commands side by side (the second start stays well under 20 s)."""
    procs = []
    for service, args in jobs:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, service.manage, *args],
            cwd=ROOT,
            env=_env(stack, service),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append((service, args, proc, started))
    failed = []
    for service, args, proc, started in procs:
        output, _ = proc.communicate()
        label = f"{service.manage} {' '.join(args)}"
        if proc.returncode != 0:
            failed.append(label)
            sys.stderr.write(f"--- {label} ---\n{output[-4000:]}\n")
        else:
            print(f"  {label}: ok ({time.perf_counter() - started:.1f}s)", flush=True)
    if failed:
        raise SystemExit(f"set-up failed: {', '.join(failed)}")


def start_processes(stack: StackEnv, supervisor: Supervisor) -> None:
    """Every process of common.conf.processes: SCALE of each (one gateway per port), the scheduler once."""
    for name, command, env in planned_processes(stack):
        supervisor.start(name, command, env, ROOT)


def planned_processes(stack: StackEnv) -> list[tuple[str, list[str], dict[str, str]]]:
    """What start_processes starts, in order: each process's name (its pid file), argv and environment."""
    paths = layout(stack)
    planned = []
    for process in PROCESSES:
        service = process.service
        options = Options(
            bin_dir=Path(sys.executable).parent,
            host=HOST,
            http_workers=os.environ.get(f"{service.name.upper()}_WORKERS", "1"),
            log_level="warning",
            static_root=paths.static_dir(service.name).parent,
            beat_schedule=paths.run_dir / "celerybeat-schedule",
        )
        for name, number in _instances(process):
            command = argv(process, options, port=number, instance=name if process.kind == "worker" else None)
            planned.append((name, command, _env(stack, service, identity_of(process.name))))
    return planned


def _instances(process: Process) -> list[tuple[str, int | None]]:
    """Each instance's name (its pid file) and port: SCALE of each kind, the scheduling worker once."""
    service = process.service
    if process.kind == "http":
        ports = gateway_ports() if service is GATEWAY else [port(service)]
        return [(instance_name(f"{service.name}-http", index), number) for index, number in enumerate(ports)]
    if process.kind == "bridge":
        return [(instance_name(process.name, index), None) for index in range(SCALE)]
    # The scheduling worker is the first worker; the plain ones make up the rest of SCALE.
    worker = f"{service.name}-worker"
    return [(worker, None)] if process.beat else [(instance_name(worker, index), None) for index in range(1, SCALE)]


def wait_ready(timeout: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    status: dict[str, int] = {}
    targets = [(GATEWAY.name if i == 0 else f"gateway-{i + 1}", p) for i, p in enumerate(gateway_ports())]
    targets += [(AUTH.name, port(AUTH)), (MAIN.name, port(MAIN))]
    for name, number in targets:
        url = f"http://{HOST}:{number}/readyz"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=3) as response:
                    status[name] = response.status
                    break
            except urllib.error.HTTPError as exc:
                status[name] = exc.code
            except (urllib.error.URLError, OSError):
                status[name] = 0
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} is not ready at {url} (last status {status[name]})")
            time.sleep(0.3)
    return status


def banner(stack: StackEnv, started: float) -> str:
    mail_dir = layout(stack).mail_dir
    password = os.environ.get("SEED_PASSWORD", "Password123!")
    lines = [
        "",
        "=" * 72,
        f"  authmesh is up ({time.perf_counter() - started:.1f}s)",
        "",
        f"  API (gateway)        http://{HOST}:{port(GATEWAY)}/api/"
        + (f"  (+{SCALE - 1} more on {', '.join(str(p) for p in gateway_ports()[1:])})" if SCALE > 1 else ""),
        f"  API docs             http://{HOST}:{port(GATEWAY)}/api/docs/   schema: /api/schema/",
        f"  browsable API        http://{HOST}:{port(GATEWAY)}/api/login   (log in there, then browse /api/user)",
        f"  JWKS                 http://{HOST}:{port(GATEWAY)}/.well-known/jwks.json",
        f"  auth service admin   http://{HOST}:{port(AUTH)}/admin/",
        f"  main_api admin       http://{HOST}:{port(MAIN)}/admin/   (development staff login: sysadmin / {password})",
        f"  health               /healthz and /readyz on each of :{port(GATEWAY)} :{port(AUTH)} :{port(MAIN)}",
        "",
        f"  seeded logins (password {password}):",
        "    sys-admin@test.com (sys_admin)   admin@test.com (admin)",
        "    user@test.com (user)             guest@test.com (guest)",
        "",
        f"  mail: printed below and saved as .eml files in {mail_dir}",
        f"  servers: PostgreSQL {stack.database_url}",
        f"           Redis {stack.redis_url}   NATS {stack.nats_url}",
        "  pid files: var/run/*.pid     stop: Ctrl-C",
        "=" * 72,
        "",
    ]
    return "\n".join(lines)


def main(stack: StackEnv) -> int:
    started = time.perf_counter()
    prepare(stack)
    supervisor = Supervisor(layout(stack).run_dir)
    try:
        start_processes(stack, supervisor)
        wait_ready()
        print(banner(stack, started), flush=True)
        return supervisor.wait_forever()
    finally:
        supervisor.stop_all()
