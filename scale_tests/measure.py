"""`python -m scale_tests.measure`: bounded wrk loads through a gateway; req/s and CPU ms per request per process.

Runs inside `python -m devstack exec --profile test` (DATABASE_URL and REDIS_URL). Starts the scale suite's
stack (two of every bridge and worker) and one gateway on loopback, drives each case for SCALE_MEASURE_SECONDS
(default 8) with wrk, and reads every process's CPU time before and after: CPU milliseconds per request is what
sizes a tier on any machine (req/s per core = 1000 / ms), whereas req/s alone is only this machine's.
Writes var/scale/measure.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from devstack.testing.stack import REPO_ROOT, StackProcess
from scale_tests.support import Browser, ScaledStack, gateway_servers, log_records, scaled_stack

SECONDS = float(os.environ.get("SCALE_MEASURE_SECONDS", "8"))
CONNECTIONS = int(os.environ.get("SCALE_MEASURE_CONNECTIONS", "16"))
OUT = REPO_ROOT / "var" / "scale" / "measure.json"
SEED_EMAIL, SEED_PASSWORD = "user@test.com", os.environ.get("SEED_PASSWORD", "Password123!")
# The cases measure throughput from one address on purpose; production throttles would answer 429 instead.
UNTHROTTLED = "login.ip=100000000/10m,login.account-source=100000000/10m"


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    method: str = "GET"
    body: str = ""
    bearer: bool = False


@dataclass
class Result:
    name: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    statuses: dict[str, int]
    cpu_ms_per_request: dict[str, float]
    cpu_busy_cores: float


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of a process and all its children (granian's workers, Celery's threads are one process)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # a child that exited between listing and reading
            continue
        total += times.user + times.system
    return total


def _wrk(port: int, case: Case, token: str, script_dir: Path) -> tuple[int, float, float, float, int]:
    lines = [f'wrk.method = "{case.method}"', 'wrk.headers["Content-Type"] = "application/json"']
    if case.body:
        lines.append(f"wrk.body = [[{case.body}]]")
    if case.bearer:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    script = script_dir / f"{re.sub(r'[^a-z0-9]+', '-', case.name.lower())}.lua"
    script.write_text("\n".join(lines) + "\n")
    argv = [
        "wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS:.0f}s", "--latency", "--timeout", "10s",
        "-s", str(script), f"http://127.0.0.1:{port}{case.path}",
    ]  # fmt: skip
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=SECONDS + 30).stdout
    requests = int(_find(r"(\d+) requests in", output))
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", output))
    non_2xx = int(_find(r"Non-2xx or 3xx responses: (\d+)", output, default="0"))
    return (
        requests,
        rps,
        _ms(_find(r"\s50%\s+([\d.]+\w+)", output)),
        _ms(_find(r"\s99%\s+([\d.]+\w+)", output)),
        non_2xx,
    )


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is None:
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
        return default
    return match.group(1)


def _ms(value: str) -> float:
    """wrk's latency (`812.00us`, `3.41ms`, `1.20s`) in milliseconds."""
    number = value.rstrip("smu")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[value[len(number) :]]
    return round(float(number) * scale, 2)


def _listener(url: str) -> psutil.Process | None:
    """The server process listening on the URL's port (PostgreSQL's postmaster: its backends are its children)."""
    port = urlsplit(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _processes(scaled: ScaledStack, gateway: StackProcess) -> dict[str, psutil.Process]:
    named = {"gateway": gateway, **{p.name: p for p in scaled.stack.processes}}
    named.update({p.name: p for p in scaled.extra()})
    found = {name: psutil.Process(p.popen.pid) for name, p in named.items()}
    env = scaled.stack.env
    for name, url in (("postgres", env["DATABASE_URL"]), ("redis", env["REDIS_URL"]), ("nats", scaled.stack.nats_url)):
        server = _listener(url)
        if server is not None:
            found[name] = server
    return found


def measure(scaled: ScaledStack, port: int, gateway: StackProcess, cases: list[Case]) -> list[Result]:
    login = Browser().call(port, "POST", "/api/login", {"slug": SEED_EMAIL, "password": SEED_PASSWORD})
    if login.status != 200:
        raise RuntimeError(f"login failed: {login.status} {login.body}")
    token = str(login.body["accessToken"])
    processes = _processes(scaled, gateway)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="scale-wrk-") as scripts:
        for case in cases:
            logged = len(log_records(gateway))
            before = {name: _cpu_seconds(proc) for name, proc in processes.items()}
            machine_before, started = psutil.cpu_times(), time.monotonic()
            requests, rps, p50, p99, non_2xx = _wrk(port, case, token, Path(scripts))
            elapsed = time.monotonic() - started
            machine_after = psutil.cpu_times()
            per_request = {
                name: round((_cpu_seconds(proc) - before[name]) * 1000 / max(requests, 1), 2)
                for name, proc in processes.items()
            }
            busy = (sum(machine_after) - machine_after.idle) - (sum(machine_before) - machine_before.idle)
            # wrk counts non-2xx answers only; the gateway's access log says which they were.
            answered = Counter(
                str(r.get("status")) for r in log_records(gateway)[logged:] if r.get("msg") == "http request"
            )
            results.append(
                Result(
                    case.name, requests, rps, p50, p99, non_2xx, dict(answered), per_request, round(busy / elapsed, 2)
                )
            )
            time.sleep(1.0)  # let the relay and the consumers settle before the next case
    return results


def main() -> int:
    os.environ.setdefault("LOG_JSON", "true")
    cases = [
        Case("GET /healthz (gateway only)", "/healthz"),
        Case("GET /api/user?limit=10", "/api/user?limit=10", bearer=True),
        Case("GET /.well-known/jwks.json", "/.well-known/jwks.json"),
        Case("POST /api/login", "/api/login", "POST", json.dumps({"slug": SEED_EMAIL, "password": SEED_PASSWORD})),
    ]
    workers = int(os.environ.get("SCALE_MEASURE_GATEWAY_WORKERS", "1"))
    with (
        scaled_stack() as scaled,
        gateway_servers(scaled, count=1, workers=workers, env={"THROTTLE_RATES": UNTHROTTLED}) as [server],
    ):
        results = measure(scaled, server.port, server.process, cases)
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_count": psutil.cpu_count(),
        "seconds_per_case": SECONDS,
        "connections": CONNECTIONS,
        "gateway_workers": workers,
        "results": [asdict(result) for result in results],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    for result in results:
        busy = {name: ms for name, ms in result.cpu_ms_per_request.items() if ms >= 0.05}
        sys.stdout.write(
            f"{result.name}: {result.rps} req/s p50 {result.p50_ms} ms p99 {result.p99_ms} ms "
            f"statuses {result.statuses} cores busy {result.cpu_busy_cores}\n    cpu ms/request {busy}\n"
        )
    sys.stdout.write(f"written: {OUT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
