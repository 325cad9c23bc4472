"""Hostile clients at the gateway: huge and deep bodies, invalid UTF-8, header floods, slow senders."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from verify.client import CSRF_COOKIE, Reply, Session, envelope_problem, request
from verify.consistency import Checker
from verify.report import Row, say
from verify.system import System

TEN_MB = 10 * 1024 * 1024
RAW_TIMEOUT = 30.0
SLOW_CONNECTIONS = 50
SLOW_SECONDS = 12.0
# Slow-body senders: as many as the gateway has blocking threads (granian --blocking-threads 4), plus some.
SLOW_BODIES = 6
# A request made while slow clients are connected must still be answered this fast to count as served.
SERVED_WITHIN = 3.0


@dataclass(frozen=True)
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes
    error: str = ""

    def as_reply(self) -> Reply:
        return Reply(self.status, self.body, tuple(self.headers.items()), error=self.error)


def raw_request(address: tuple[str, int], head: bytes, body: bytes = b"", *, timeout: float = RAW_TIMEOUT) -> RawReply:
    """Send exactly these bytes (a request line and headers the stdlib client would refuse to write) and read
    the answer up to the end of the connection; a server that answers early and closes is read all the same."""
    with socket.create_connection(address, timeout=timeout) as sock:
        error = ""
        try:
            sock.sendall(head + b"\r\n" + body)
        except OSError as exc:
            # The server may answer (413, 431) and close before taking the whole body: read what it said.
            error = f"send: {type(exc).__name__}"
        data = bytearray()
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
    if not data:
        return RawReply(0, {}, b"", error or "no answer")
    header_block, _, payload = bytes(data).partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return RawReply(status, headers, payload, error)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


def head(method: str, target: bytes, *headers: bytes) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n"


@dataclass
class Findings:
    """What one abuse case found. An answer to hostile input must be one of the expected statuses, never a
    5xx, and in the error envelope when Django produced it (granian's own 400/431 for requests it cannot
    parse carry no request id and no envelope: no application code ran)."""

    problems: list[str] = field(default_factory=list)
    server_errors: int = 0
    details: dict[str, object] = field(default_factory=dict)

    def check(self, label: str, reply: RawReply | Reply, statuses: set[int]) -> None:
        status = reply.status
        if status == 500:
            self.server_errors += 1
        if status == 0 or status >= 500 or status not in statuses:
            self.problems.append(f"{label}: {status} (expected {sorted(statuses)}) {reply.body[:160]!r} {reply.error}")
            return
        from_django = "x-request-id" in {key.lower() for key in _headers(reply)}
        problem = envelope_problem(reply if isinstance(reply, Reply) else reply.as_reply())
        if from_django and problem:
            self.problems.append(f"{label}: {problem}")


def _headers(reply: RawReply | Reply) -> list[str]:
    return list(reply.headers) if isinstance(reply, RawReply) else [key for key, _ in reply.headers]


def _json_head(method: str, path: bytes, length: int, *extra: bytes) -> bytes:
    return head(method, path, b"Content-Type: application/json", b"Content-Length: %d" % length, *extra)


def _auth_headers(session: Session) -> tuple[bytes, ...]:
    csrf = session.cookies.get(CSRF_COOKIE, "")
    return (
        f"Authorization: Bearer {session.token}".encode(),
        f"x-csrf-token: {csrf}".encode(),
        f"Cookie: {CSRF_COOKIE}={csrf}".encode(),
    )


# --- the cases -----------------------------------------------------------------------------------------------


def big_bodies(address: tuple[str, int], admin: Session, found: Findings) -> None:
    """10 MB bodies: refused with 413 in the envelope before being read, public or authenticated route."""
    body = json.dumps({"name": "x" * TEN_MB}).encode()
    for path, extra in ((b"/api/signup", ()), (b"/api/login", ()), (b"/api/user", _auth_headers(admin))):
        reply = raw_request(address, _json_head("POST", path, len(body), *extra), body)
        found.check(f"POST {path.decode()} 10 MB", reply, {413})
    # Chunked: no Content-Length to check up front. Django sees no declared body; the answer must still be a 4xx.
    chunked = head("POST", b"/api/signup", b"Content-Type: application/json", b"Transfer-Encoding: chunked")
    piece = b"a" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(TEN_MB // len(piece))) + b"0\r\n\r\n"
    found.check("POST /api/signup 10 MB chunked", raw_request(address, chunked, chunks), {400, 411, 413})


def deep_json(address: tuple[str, int], admin: Session, found: Findings) -> None:
    """Nesting past the parser's recursion limit, and nesting that parses but would break validation: 400."""
    bodies = {
        "array 200k deep": b"[" * 200_000 + b"]" * 200_000,
        "object 50k deep": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "field 900 deep": b'{"slug": ' + b"[" * 900 + b"]" * 900 + b', "password": "x"}',
    }
    for label, body in bodies.items():
        found.check(f"login {label}", raw_request(address, _json_head("POST", b"/api/login", len(body)), body), {400})
    fields = b'{"name": "Deep Nest", "username": "deepnest", "email": "d@example.com", "password": "x", "roles": '
    body = fields + b"[" * 900 + b"]" * 900 + b"}"
    reply = raw_request(address, _json_head("POST", b"/api/user", len(body), *_auth_headers(admin)), body)
    found.check("create user, roles 900 deep", reply, {400})


def invalid_utf8(address: tuple[str, int], admin: Session, found: Findings) -> None:
    """Bytes that are not UTF-8 in the body, the path, the query, header values and cookies."""
    refused = {400, 401, 403, 404}
    body = b'{"slug": "\xff\xfe\xfd", "password": "\xc3\x28"}'
    found.check("body", raw_request(address, _json_head("POST", b"/api/login", len(body)), body), {400})
    auth = _auth_headers(admin)
    for target in (b"/api/user/\xff\xfe", b"/api/user/%FF%FE", b"/api/user?limit=%FF&offset=\xff", b"/api/\xc3\x28"):
        found.check(f"GET {target!r}", raw_request(address, head("GET", target, *auth)), refused)
    bearer = head("GET", b"/api/user", b"Authorization: Bearer \xff\xfe")
    found.check("bearer token", raw_request(address, bearer), {401})
    cookies = head(
        "POST",
        b"/api/auth/revalidate-credentials",
        b"Cookie: Authentication=\xff\xfe; csrf=\xc3\x28",
        b"x-csrf-token: \xc3\x28",
        b"Content-Length: 0",
    )
    found.check("refresh cookie", raw_request(address, cookies), {401, 403})


def header_floods(address: tuple[str, int], admin: Session, found: Findings) -> None:
    """Many headers, one huge header, many cookies: refused (granian's 431/400) or served, never a 5xx."""
    allowed = {200, 400, 401, 413, 431}
    many = tuple(b"X-Flood-%d: %s" % (i, b"v" * 64) for i in range(2000))
    found.check("2000 headers", raw_request(address, head("GET", b"/healthz", *many)), allowed)
    for size in (64 * 1024, 1024 * 1024):
        big = head("GET", b"/healthz", b"X-Big: " + b"a" * size)
        found.check(f"one {size // 1024} KB header", raw_request(address, big), allowed)
    cookie = b"Cookie: " + b"; ".join(b"c%d=%s" % (i, b"v" * 32) for i in range(3000))
    found.check(
        "3000 cookies", raw_request(address, head("GET", b"/api/user", cookie, _auth_headers(admin)[0])), allowed
    )
    foreign = b"GET /api/user HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n"
    found.check("foreign Host", raw_request(address, foreign), {400})


@contextlib.contextmanager
def _slow_senders(address: tuple[str, int], count: int, opening: bytes, drip: Callable[[int], bytes]) -> Iterator[None]:
    """`count` connections that send `opening`, then one `drip` a second, for at most SLOW_SECONDS."""
    stop = threading.Event()

    def sender() -> None:
        with contextlib.suppress(OSError), socket.create_connection(address, timeout=RAW_TIMEOUT) as sock:
            sock.sendall(opening)
            step = 0
            while not stop.wait(1.0) and step < SLOW_SECONDS:
                sock.sendall(drip(step))
                step += 1

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(RAW_TIMEOUT)


def _served(session: Session, found: Findings, rounds: int) -> float:
    """Ordinary reads while slow clients hold connections: each must be a 200; returns the slowest."""
    slowest = 0.0
    for _ in range(rounds):
        reply = session.call("GET", "/api/user?limit=1", bearer=True, timeout=RAW_TIMEOUT)
        slowest = max(slowest, reply.elapsed)
        found.check("an ordinary read", reply, {200})
        time.sleep(0.5)
    return round(slowest, 2)


def slow_headers(address: tuple[str, int], admin: Session, found: Findings) -> None:
    """Slowloris: many connections trickling header lines. HTTP parsing is granian's async runtime, so no
    worker thread is held and ordinary requests keep being served promptly."""
    opening = b"GET /api/user HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with _slow_senders(address, SLOW_CONNECTIONS, opening, lambda step: b"X-Slow-%d: %d\r\n" % (step, step)):
        slowest = _served(admin, found, rounds=5)
    found.details["slowest_read_seconds"] = slowest
    if slowest > SERVED_WITHIN:
        found.problems.append(f"ordinary reads took up to {slowest:.1f} s with {SLOW_CONNECTIONS} slow-header clients")


def slow_bodies(address: tuple[str, int], admin: Session, found: Findings) -> None:
    """Clients trickling a request body: the WSGI app reads the body on a blocking thread, so each holds one of
    granian's 4 for as long as it trickles. Requests queue meanwhile (answered late, never a 5xx) and are served
    at once when the tricklers go; a buffering proxy in front is the production answer (docs/SECURITY.md).
    The latency is reported, not failed; a 5xx, an error or a dead process fails."""
    opening = _json_head("POST", b"/api/login", 64) + b"\r\n{"
    with _slow_senders(address, SLOW_BODIES, opening, lambda step: b" "):
        found.details["slowest_read_seconds"] = _served(admin, found, rounds=3)
    found.details["slowest_read_after_seconds"] = _served(admin, found, rounds=2)


CASES: dict[str, Callable[[tuple[str, int], Session, Findings], None]] = {
    "10 MB bodies": big_bodies,
    "deeply nested JSON": deep_json,
    "invalid UTF-8": invalid_utf8,
    "header floods": header_floods,
    "slow headers (slowloris)": slow_headers,
    "slow bodies": slow_bodies,
}


def run(system: System, checker: Checker, selected: Callable[[str], bool]) -> list[Row]:
    say("abuse: hostile bodies, encodings, headers and slow clients at the gateway")
    address = system.gateway
    admin = Session(address)
    if admin.login("sys-admin@test.com").status != 200:
        raise RuntimeError("abuse: cannot log in as the seeded sys_admin")
    rows: list[Row] = []
    for name, case in CASES.items():
        if not selected(name):
            continue
        started = time.monotonic()
        found = Findings()
        case(address, admin, found)
        dead = system.dead()
        if dead:
            found.problems.append(f"not running afterwards: {', '.join(dead)}")
        after = request(address, "GET", "/healthz", timeout=10)
        if after.status != 200:
            found.problems.append(f"gateway /healthz answered {after.status} afterwards")
        row = Row(section="abuse", name=name, server_errors=found.server_errors, problems=found.problems)
        row.details, row.seconds = found.details, time.monotonic() - started
        rows.append(row)
        say(f"  {name:<28} {'ok' if row.passed else 'FAIL'}  {found.details or ''}")
    return rows
