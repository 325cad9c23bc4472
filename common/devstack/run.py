"""`make run`: migrate, provision, seed, then start every process of every service and print the banner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common.devstack.servers import StackEnv
from common.devstack.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Service:
    name: str
    manage: str
    settings: str
    port: int


PORT_BASE = int(os.environ.get("RUN_PORT_BASE", "8000"))
GATEWAY = Service("gateway", "manage_gateway.py", "gateway.settings.dev", PORT_BASE)
AUTH = Service("auth", "manage_auth.py", "auth_service.settings.dev", PORT_BASE + 1)
MAIN = Service("main", "manage_main.py", "main_api.settings.dev", PORT_BASE + 2)
SERVICES = (GATEWAY, AUTH, MAIN)
HOST = os.environ.get("RUN_HOST", "127.0.0.1")


def _env(stack: StackEnv, service: Service) -> dict[str, str]:
    env = {**os.environ, **stack.as_environ()}
    env.setdefault("DJANGO_SETTINGS_MODULE", service.settings)
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get(f"{service.name.upper()}_SETTINGS", service.settings)
    env.setdefault("PYTHONUNBUFFERED", "1")
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
    granian = str(BIN / "granian")
    for service in SERVICES:
        static_dir = ROOT / "var" / "static" / service.name
        supervisor.start(
            f"{service.name}-http",
            [
                granian,
                "--interface",
                "wsgi",
                f"{'auth_service' if service is AUTH else 'main_api' if service is MAIN else 'gateway'}.wsgi:application",
                "--host",
                HOST,
                "--port",
                str(service.port),
                "--workers",
                os.environ.get(f"{service.name.upper()}_WORKERS", "1"),
                "--blocking-threads",
                "4",
                "--static-path-route",
                "/static",
                "--static-path-mount",
                str(static_dir),
                "--no-ws",
            ],
            _env(stack, service),
            ROOT,
        )
    for service in (AUTH, MAIN):
        supervisor.start(
            f"{service.name}-bridge", [sys.executable, service.manage, "nats_bridge"], _env(stack, service), ROOT
        )
    celery = str(BIN / "celery")
    supervisor.start(
        "auth-worker",
        [
            celery,
            "-A",
            "auth_service",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "-l",
            "info",
            "-n",
            "auth-worker@%h",
        ],
        _env(stack, AUTH),
        ROOT,
    )
    supervisor.start(
        "auth-beat",
        [celery, "-A", "auth_service", "beat", "-l", "info", "-s", str(ROOT / "var" / "run" / "celerybeat-schedule")],
        _env(stack, AUTH),
        ROOT,
    )


def wait_ready(timeout: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    status: dict[str, int] = {}
    for service in SERVICES:
        url = f"http://{HOST}:{service.port}/readyz"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=3) as response:
                    status[service.name] = response.status
                    break
            except urllib.error.HTTPError as exc:
                status[service.name] = exc.code
            except (urllib.error.URLError, OSError):
                status[service.name] = 0
            if time.monotonic() > deadline:
                raise SystemExit(f"{service.name} is not ready at {url} (last status {status[service.name]})")
            time.sleep(0.3)
    return status


def banner(stack: StackEnv, started: float) -> str:
    mail_dir = ROOT / "var" / "mail"
    password = os.environ.get("SEED_PASSWORD", "Password123!")
    lines = [
        "",
        "=" * 72,
        f"  authmesh is up ({time.perf_counter() - started:.1f}s)",
        "",
        f"  API (gateway)        http://{HOST}:{GATEWAY.port}/api/",
        f"  API docs             http://{HOST}:{GATEWAY.port}/api/docs/   schema: /api/schema/",
        f"  JWKS                 http://{HOST}:{GATEWAY.port}/.well-known/jwks.json",
        f"  auth service admin   http://{HOST}:{AUTH.port}/admin/",
        f"  main_api admin       http://{HOST}:{MAIN.port}/admin/",
        f"  health               /healthz and /readyz on each of :{GATEWAY.port} :{AUTH.port} :{MAIN.port}",
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
    supervisor = Supervisor(ROOT)
    try:
        start_processes(stack, supervisor)
        wait_ready()
        print(banner(stack, started), flush=True)
        return supervisor.wait_forever()
    finally:
        supervisor.stop_all()
