"""The benchmark cases (a)-(h) of `make bench`, and the ceilings they are held against."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.loadgen import Result, percentile, run_builtin, run_wrk, run_wrk_refresh, wrk_available
from devstack.layout import StackEnv
from devstack.procs import choose_port
from devstack.run import AUTH, GATEWAY, HOST, dev_settings, port
from devstack.supervisor import Supervisor
from devstack.trust import identity_environ

GATEWAY_PORT = port(GATEWAY)

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 16
# Each wrk case first runs this long unmeasured (connection pools, prepared statements, caches filled).
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
PASSWORD = os.environ.get("SEED_PASSWORD", "Password123!")
REFRESH_PATH = "/api/auth/revalidate-credentials"
REFRESH_COOKIE = "Authentication"  # gateway.api.cookies.REFRESH_COOKIE (bench imports no service code)


# -- HTTP helpers ---------------------------------------------------------------------------------------
def http(
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    port: int = GATEWAY_PORT,
) -> tuple[int, dict[str, Any] | None, list[str]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None, resp.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None, exc.headers.get_all("Set-Cookie") or []


def cookies_from(set_cookies: list[str]) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in set_cookies:
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            jar[name] = morsel.value
    return jar


def login(slug: str = "user@test.com") -> tuple[str, dict[str, str]]:
    status, body, set_cookies = http("POST", "/api/login", {"slug": slug, "password": PASSWORD})
    if status != 200 or not body:
        raise RuntimeError(f"login failed: {status} {body}")
    return body["accessToken"], cookies_from(set_cookies)


def csrf_cookie_name(jar: dict[str, str]) -> str:
    return next(name for name in jar if "csrf" in name.lower())


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


# -- cases ----------------------------------------------------------------------------------------------
def http_case(
    name: str,
    path: str,
    seconds: float,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    port: int = GATEWAY_PORT,
) -> Result:
    raw = json.dumps(body) if body is not None else None
    hdrs = dict(headers or {})
    if raw is not None:
        hdrs["Content-Type"] = "application/json"
    if wrk_available():
        for length in (WARMUP_SECONDS, seconds):  # the warm-up's figures are dropped
            result = run_wrk(
                name,
                f"http://{HOST}:{port}{path}",
                connections=CONNECTIONS,
                seconds=length,
                method=method,
                headers=hdrs,
                body=raw,
            )
        return result

    def make(_: dict[str, str]) -> tuple[str, str, dict[str, str], bytes]:
        return method, path, hdrs, (raw or "").encode()

    return run_builtin(name, HOST, port, make, connections=CONNECTIONS, seconds=seconds)


def refresh_case(seconds: float) -> Result:
    """Each connection holds its own session and rotates its refresh cookie on every request."""
    if wrk_available():
        for length in (WARMUP_SECONDS, seconds):  # the warm-up's figures are dropped; each run has new sessions
            jars = [login()[1] for _ in range(CONNECTIONS)]
            result = run_wrk_refresh(
                "refresh (rotating cookies)",
                f"http://{HOST}:{GATEWAY_PORT}{REFRESH_PATH}",
                path=REFRESH_PATH,
                cookie_name=REFRESH_COOKIE,
                sessions=[(jar[REFRESH_COOKIE], csrf_cookie_name(jar), jar[csrf_cookie_name(jar)]) for jar in jars],
                seconds=length,
            )
        return result
    states = []
    for _ in range(CONNECTIONS):
        _, jar = login()
        states.append(dict(jar))

    def make(state: dict[str, str]) -> tuple[str, str, dict[str, str], bytes]:
        return (
            "POST",
            REFRESH_PATH,
            {
                "Cookie": cookie_header(state),
                "x-csrf-token": state[csrf_cookie_name(state)],
                "Content-Type": "application/json",
            },
            b"",
        )

    def on_response(state: dict[str, str], status: int, headers: dict[str, list[str]], body: bytes) -> None:
        state.update(cookies_from(headers.get("set-cookie", [])))

    return run_builtin(
        "refresh (rotating cookies)",
        HOST,
        GATEWAY_PORT,
        make,
        connections=CONNECTIONS,
        seconds=seconds,
        states=states,
        on_response=on_response,
    )


def propagation_case(stack: StackEnv, count: int = 200) -> dict[str, Any]:
    """Signup through the gateway, then poll main_api's database until the user is there."""
    main_db = stack.database_url.rsplit("/", 1)[0] + "/main"
    samples: list[float] = []
    with psycopg.connect(main_db, autocommit=True) as conn:
        for _ in range(count):
            tag = uuid.uuid4().hex[:12]
            username = f"bench{tag}"
            status, body, _ = http(
                "POST",
                "/api/signup",
                {
                    "name": "Bench User",
                    "username": username,
                    "email": f"{username}@bench.test",
                    "password": "Bench-Pass-1234!x",
                },
            )
            if status != 200:
                raise RuntimeError(f"signup failed: {status} {body}")
            answered = time.perf_counter()
            while True:
                row = conn.execute("SELECT 1 FROM users_user WHERE username = %s", (username,)).fetchone()
                if row:
                    samples.append((time.perf_counter() - answered) * 1000)
                    break
                if time.perf_counter() - answered > 10:
                    raise RuntimeError("propagation took over 10 s")
                time.sleep(0.0005)
    return {
        "name": "signup -> main_api propagation",
        "count": count,
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


def _copy_outbox_rows(conn: psycopg.Connection[Any], count: int) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    columns = "event_id, aggregate_id, event_type, payload, created_at, attempts, last_error"
    with conn.cursor() as cur, cur.copy(f"COPY outbox_outboxevent ({columns}) FROM STDIN") as copy:
        for i in range(count):
            uid = str(uuid.uuid4())
            payload = {
                "id": uid,
                "name": "Relay Bench",
                "username": f"relay{i}x{uid[:8]}",
                "email": f"relay{i}.{uid[:8]}@bench.test",
                "roles": ["user"],
                "verifiedAccount": False,
                "active": True,
                "createdAt": now,
                "updatedAt": now,
                "version": 1,
            }
            copy.write_row((str(uuid.uuid4()), uid, "auth.user.registered", json.dumps(payload), now, 0, ""))


def relay_case(stack: StackEnv, count: int = 10000) -> dict[str, Any]:
    """The relay's own throughput: a long-running relay is up first, then `count` events commit at once.

    Timed from the commit of the rows until none is pending, so the relay's start-up is not in the figure.
    The stack's own relays (the auth bridge's in-process relay, beat's periodic one) may take part, as they
    would in production; the dedicated relay reports how many of the events it published itself.
    """
    auth_db = stack.database_url.rsplit("/", 1)[0] + "/auth"
    env = {**os.environ, **stack.as_environ(), "DJANGO_SETTINGS_MODULE": dev_settings(AUTH), "PYTHONUNBUFFERED": "1"}
    env.update(identity_environ("auth-worker", env))  # a relay is an auth worker's part, within its permissions
    relay = subprocess.Popen(
        [sys.executable, "manage_auth.py", "relay_outbox", "--loop", "--interval", "0.02"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert relay.stdout is not None
        if relay.stdout.readline().strip() != "relaying until SIGTERM":
            raise RuntimeError("the relay_outbox --loop command did not start")
        with psycopg.connect(auth_db) as conn:
            _copy_outbox_rows(conn, count)
            # A bulk load is followed by fresh planner statistics, as autovacuum's analyze would give them.
            conn.execute("ANALYZE outbox_outboxevent")
            conn.commit()
            started = time.perf_counter()
        with psycopg.connect(auth_db, autocommit=True) as conn:
            while True:
                pending = conn.execute("SELECT count(*) FROM outbox_outboxevent WHERE published_at IS NULL").fetchone()
                if pending and pending[0] == 0:
                    break
                if time.perf_counter() - started > 120:
                    raise RuntimeError("relay did not finish in 120 s")
                time.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        relay.terminate()
        out, _ = relay.communicate(timeout=30)
    own = next(
        (int(w) for line in out.splitlines() if line.startswith("stopped;") for w in line.split() if w.isdigit()), 0
    )
    return {
        "name": "outbox relay",
        "events": count,
        "seconds": round(elapsed, 3),
        "events_per_s": round(count / elapsed, 1),
        "by_dedicated_relay": own,
        "note": "long-running relay; from the commit of the rows until none is pending",
    }


# -- ceilings -------------------------------------------------------------------------------------------
def static_ceiling(supervisor: Supervisor, seconds: float) -> Result:
    port = choose_port()
    workers = os.environ.get("GATEWAY_WORKERS", "2")
    supervisor.start(
        "static-200",
        [
            str(Path(sys.executable).parent / "granian"),
            "--interface",
            "wsgi",
            "bench.static_app:application",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            workers,
            "--no-ws",
        ],
        {},
        ROOT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=1).read()
            break
        except OSError:
            time.sleep(0.2)
    return http_case("static 200 (server ceiling)", "/", seconds, port=port)


def rs256_ceiling(seconds: float = 3.0) -> dict[str, Any]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "x", "exp": int(time.time()) + 600, "aud": "a", "iss": "i"}, key, algorithm="RS256")
    public = key.public_key()
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        jwt.decode(token, public, algorithms=["RS256"], audience="a", issuer="i")
        count += 1
    return {
        "name": "RS256 verify (PyJWT + cryptography, one core)",
        "per_s": round(count / (time.perf_counter() - started), 1),
    }


def nats_ceiling(stack: StackEnv, seconds: float = 3.0) -> dict[str, Any]:
    from common.messaging.client import open_connection

    async def main() -> dict[str, Any]:
        nc = await open_connection(stack.nats_url, name="bench-requester")
        responder = await open_connection(stack.nats_url, name="bench-responder")

        async def reply(msg: Any) -> None:
            await msg.respond(b"{}")

        await responder.subscribe("bench.ping", cb=reply)
        await responder.flush()
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            await nc.request("bench.ping", b"{}", timeout=2)
            count += 1
        sequential = count / (time.perf_counter() - started)
        count = 0
        started = time.perf_counter()

        async def loop() -> None:
            nonlocal count
            while time.perf_counter() - started < seconds:
                await nc.request("bench.ping", b"{}", timeout=2)
                count += 1

        await asyncio.gather(*[loop() for _ in range(16)])
        parallel = count / (time.perf_counter() - started)
        await nc.close()
        await responder.close()
        return {
            "name": "NATS request/reply round trip",
            "sequential_per_s": round(sequential, 1),
            "in_flight_16_per_s": round(parallel, 1),
        }

    return asyncio.run(main())


# -- memory ---------------------------------------------------------------------------------------------
# The target for the whole stack at idle, held against the summed RSS: that is how the original's three Node
# processes were measured (~336 MB). Summed RSS counts a page once per process mapping it (a granian parent and its
# forked workers share most of theirs), so PSS, which splits each shared page between its mappers, is printed
# beside it as the fairer figure for what the stack costs the machine, and USS as what each process holds alone.
MEMORY_TARGET_MIB = 400.0
MEMORY_KINDS = ("rss", "pss", "uss")


def tree_memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (MiB) of a process and its descendants (granian's workers, Celery's embedded beat)."""
    totals = dict.fromkeys(MEMORY_KINDS, 0)
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for kind in MEMORY_KINDS:
            totals[kind] += getattr(info, kind)
    return {kind: round(value / 2**20, 1) for kind, value in totals.items()}


def memory_snapshot(supervisor: Supervisor) -> dict[str, dict[str, float]]:
    """{process name: {"rss", "pss", "uss"} in MiB} for every process tree the supervisor started."""
    out: dict[str, dict[str, float]] = {}
    for name, pid in supervisor.pids().items():
        if name == "static-200":
            continue
        try:
            out[name] = tree_memory(pid)
        except psutil.Error:
            continue
    return out


def memory_totals(snapshot: dict[str, dict[str, float]]) -> dict[str, float]:
    return {kind: round(sum(row[kind] for row in snapshot.values()), 1) for kind in MEMORY_KINDS}


def render_memory(title: str, snapshot: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"{title:<26} {'RSS MiB':>9} {'PSS MiB':>9} {'USS MiB':>9}"]
    for name, row in snapshot.items():
        lines.append(f"  {name:<24} {row['rss']:>9.1f} {row['pss']:>9.1f} {row['uss']:>9.1f}")
    totals = memory_totals(snapshot)
    lines.append(f"  {'total':<24} {totals['rss']:>9.1f} {totals['pss']:>9.1f} {totals['uss']:>9.1f}")
    return lines


class MemorySampler:
    """Peak RSS/PSS/USS of each process tree, sampled every half second while the load runs."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.peak: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, row in memory_snapshot(self.supervisor).items():
                peak = self.peak.setdefault(name, dict.fromkeys(MEMORY_KINDS, 0.0))
                for kind in MEMORY_KINDS:
                    peak[kind] = max(peak[kind], row[kind])

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- all ------------------------------------------------------------------------------------------------
def run_all(*, stack: StackEnv, supervisor: Supervisor, seconds: float) -> dict[str, Any]:
    time.sleep(3)  # let start-up settle before measuring idle memory
    report: dict[str, Any] = {
        "tool": "wrk" if wrk_available() else "builtin-asyncio",
        "connections": CONNECTIONS,
        "seconds_per_case": seconds,
        "cpu_count": os.cpu_count(),
    }
    report["memory_idle_mib"] = memory_snapshot(supervisor)
    token, _ = login()
    bearer = {"Authorization": f"Bearer {token}"}
    _, listing, _ = http("GET", "/api/user?limit=10", headers=bearer)
    user_id = listing["results"][0]["id"] if listing and listing.get("results") else None
    results: list[Result] = []
    with MemorySampler(supervisor) as sampler:
        results.append(http_case("GET /api/user", "/api/user", seconds, headers=bearer))
        results.append(http_case("GET /api/user/{id}", f"/api/user/{user_id}", seconds, headers=bearer))
        results.append(
            http_case(
                "POST /api/login",
                "/api/login",
                seconds,
                method="POST",
                body={"slug": "user@test.com", "password": PASSWORD},
            )
        )
        results.append(refresh_case(seconds))
        results.append(http_case("GET /.well-known/jwks.json", "/.well-known/jwks.json", seconds))
    report["memory_load_peak_mib"] = sampler.peak
    report["propagation"] = propagation_case(stack)
    report["relay"] = relay_case(stack)
    ceiling = static_ceiling(supervisor, seconds)
    results.append(ceiling)
    report["http"] = [r.to_dict() for r in results]
    for r in report["http"]:
        r["ratio_to_static_ceiling"] = round(r["rps"] / ceiling.rps, 3) if ceiling.rps else None
    report["rs256"] = rs256_ceiling()
    report["nats"] = nats_ceiling(stack)
    report["memory_idle_total_mib"] = memory_totals(report["memory_idle_mib"])
    report["memory_target_mib"] = {"rss": MEMORY_TARGET_MIB, "judged_on": "rss"}
    return report


def render(report: dict[str, Any]) -> str:
    lines = [
        f"load tool: {report['tool']}, {report['connections']} connections, {report['seconds_per_case']} s per case, {report['cpu_count']} cores",
        "",
    ]
    lines.append(f"{'case':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs static':>10}")
    for r in report["http"]:
        lines.append(
            f"{r['name']:<34} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7} {r['ratio_to_static_ceiling']!s:>10}"
        )
    p = report["propagation"]
    lines += ["", f"propagation signup -> main_api: p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms ({p['count']} signups)"]
    r = report["relay"]
    lines.append(f"outbox relay: {r['events_per_s']} events/s ({r['events']} events in {r['seconds']} s)")
    lines.append(
        f"RS256 verify ceiling: {report['rs256']['per_s']}/s; NATS round trip: {report['nats']['sequential_per_s']}/s sequential, {report['nats']['in_flight_16_per_s']}/s with 16 in flight"
    )
    lines.append("")
    lines += render_memory("memory at idle", report["memory_idle_mib"])
    rss = report["memory_idle_total_mib"]["rss"]
    verdict = "met" if rss <= MEMORY_TARGET_MIB else "NOT met"
    lines.append(f"  idle target: summed RSS <= {MEMORY_TARGET_MIB:.0f} MiB: {verdict} ({rss:.1f} MiB)")
    lines += render_memory("memory peak under load", report["memory_load_peak_mib"])
    return "\n".join(lines)
