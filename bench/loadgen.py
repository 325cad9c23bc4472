"""Load generators: wrk when installed, else a built-in asyncio HTTP/1.1 keep-alive client."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Result:
    name: str
    tool: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "tool": self.tool,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "statuses": self.statuses,
        }


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


_WRK_LUA = """
local headers_json = os.getenv("BENCH_HEADERS") or ""
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.body = os.getenv("BENCH_BODY")
for line in string.gmatch(headers_json, "[^\\n]+") do
  local k, v = string.match(line, "^([^:]+):%s*(.*)$")
  if k then wrk.headers[k] = v end
end
local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status >= 300 then non2xx = non2xx + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH_JSON {\\"requests\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, \\"errors\\": %d}\\n",
    summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
"""


# Refresh with rotating cookies: one connection per wrk thread, each thread its own session (BENCH_SESSIONS, one
# "refresh token|CSRF cookie name|CSRF token" line per thread). Every answer must carry the rotated refresh
# cookie, which the next request sends; a 200 without it counts as an error, as does any other status (the
# "Non-2xx" count; a stale token sent next would end the session family, so errors show). wrk's Lua sees one header per name, the last: the gateway
# sets the CSRF cookie before the refresh cookie. The CSRF cookie itself is kept (it is not bound to a session).
_WRK_REFRESH_LUA = """
local sessions = {}
for line in string.gmatch(os.getenv("BENCH_SESSIONS") or "", "[^\\n]+") do table.insert(sessions, line) end
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("session", sessions[#threads])
end
init = function(args)
  refresh, csrf_name, csrf = string.match(session, "^([^|]+)|([^|]+)|(.+)$")
  path = os.getenv("BENCH_PATH")
  cookie_name = os.getenv("BENCH_COOKIE")
  missing = 0
end
request = function()
  return wrk.format("POST", path, {
    ["Cookie"] = cookie_name .. "=" .. refresh .. "; " .. csrf_name .. "=" .. csrf,
    ["x-csrf-token"] = csrf,
    ["Content-Type"] = "application/json",
  }, "")
end
response = function(status, headers, body)
  local set_cookie = headers["set-cookie"] or headers["Set-Cookie"]
  local rotated = set_cookie and string.match(set_cookie, "^%s*" .. cookie_name .. "=([^;]*)")
  if rotated and rotated ~= "" then refresh = rotated elseif status == 200 then missing = missing + 1 end
end
done = function(summary, latency, requests)
  local missing_total = 0
  for _, thread in ipairs(threads) do missing_total = missing_total + (thread:get("missing") or 0) end
  io.write(string.format("BENCH_JSON {\\"requests\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, \\"errors\\": %d}\\n",
    summary.requests, latency:percentile(50), latency:percentile(99),
    missing_total + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    name: str,
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    script_text: str = _WRK_LUA,
    script_env: dict[str, str] | None = None,
) -> Result:
    """Run wrk bounded in time; non-2xx answers count as errors (wrk's `status` error counter)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(script_text)
    env = {
        "BENCH_METHOD": method,
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in (headers or {}).items()),
        "PATH": "/usr/bin:/bin",
        **(script_env or {}),
    }
    if body is not None:
        env["BENCH_BODY"] = body
    proc = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--latency",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 30,
        check=False,
    )
    Path(script.name).unlink(missing_ok=True)
    match = re.search(r"BENCH_JSON (\{.*\})", proc.stdout)
    if not match:
        raise RuntimeError(f"wrk failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    data = json.loads(match.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", proc.stdout)
    errors = int(data["errors"]) + (int(non2xx.group(1)) if non2xx else 0)
    return Result(name, "wrk", int(data["requests"]), errors, seconds, data["p50_us"] / 1000, data["p99_us"] / 1000)


RequestFactory = Callable[[dict[str, str]], tuple[str, str, dict[str, str], bytes]]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, list[str]], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    headers: dict[str, list[str]] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        headers.setdefault(key.strip().lower(), []).append(value.strip())
    length = int(headers.get("content-length", ["0"])[0])
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


async def _worker(
    host: str,
    port: int,
    make: RequestFactory,
    state: dict[str, str],
    deadline: float,
    latencies: list[float],
    statuses: dict[str, int],
    on_response: Callable[[dict[str, str], int, dict[str, list[str]], bytes], None] | None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            method, path, headers, body = make(state)
            head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
            head += [f"{k}: {v}" for k, v in headers.items()]
            started = time.perf_counter()
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            status, resp_headers, resp_body = await _read_response(reader)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if on_response:
                on_response(state, status, resp_headers, resp_body)
    finally:
        writer.close()


def run_wrk_refresh(
    name: str, url: str, *, path: str, cookie_name: str, sessions: list[tuple[str, str, str]], seconds: float
) -> Result:
    """wrk rotating refresh cookies: one connection and one thread per session (see _WRK_REFRESH_LUA)."""
    lines = "\n".join("|".join(session) for session in sessions)
    return run_wrk(
        name,
        url,
        connections=len(sessions),
        threads=len(sessions),
        seconds=seconds,
        method="POST",
        script_text=_WRK_REFRESH_LUA,
        script_env={"BENCH_SESSIONS": lines, "BENCH_PATH": path, "BENCH_COOKIE": cookie_name},
    )


def run_builtin(
    name: str,
    host: str,
    port: int,
    make: RequestFactory,
    *,
    connections: int,
    seconds: float,
    states: list[dict[str, str]] | None = None,
    on_response: Callable[[dict[str, str], int, dict[str, list[str]], bytes], None] | None = None,
) -> Result:
    """Bounded in time: `connections` keep-alive connections, each with its own state (cookies, tokens)."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    per_conn = states or [{} for _ in range(connections)]

    async def main() -> float:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *[
                _worker(host, port, make, per_conn[i % len(per_conn)], deadline, latencies, statuses, on_response)
                for i in range(connections)
            ]
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    errors = sum(count for status, count in statuses.items() if not status.startswith("2"))
    return Result(
        name,
        "builtin-asyncio",
        len(latencies),
        errors,
        elapsed,
        percentile(latencies, 50),
        percentile(latencies, 99),
        statuses,
    )
