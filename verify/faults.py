"""Fault injection under load: freeze or kill one dependency, then check the answers, the recovery and the data."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.servers import NatsServer
from devstack.testing.stack import free_port
from verify.client import Session, request, unique_user
from verify.consistency import Checker
from verify.load import Load, Tally
from verify.procs import REPO_ROOT, Target, frozen
from verify.report import Row, say
from verify.system import System, SystemUnavailable

# Mostly sign-ups (the writes whose durability is checked), with logins and reads for the other paths.
FAULT_MIX = {"signup": 0.45, "login": 0.15, "refresh": 0.1, "read": 0.3}
CLIENTS = 5
RATE = 20.0  # requests/s across the clients; each client waits out its own slow answers
BEFORE, DURING, AFTER = 3.0, 10.0, 5.0
RECOVERY_TIMEOUT = 60.0
# Routes a request with a valid access token or refresh cookie must not pass while Redis (sessions) is down.
PROTECTED = (
    ("GET", "/api/user?limit=1", True, False),
    ("GET", "/api/auth/sessions", True, False),
    ("POST", "/api/auth/revalidate-credentials", False, True),
)


@dataclass(frozen=True)
class Fault:
    # "freeze": SIGSTOP, then SIGCONT. "kill": SIGKILL, down for a while, then a fresh start.
    # "kill mid-batch": stalled until work piles up, resumed, and SIGKILLed once a batch is seen part-way.
    action: str
    target: str

    @property
    def name(self) -> str:
        if self.action == "kill mid-batch":
            return f"kill {self.target} mid-batch"
        return f"{self.action} {self.target}"


FAULTS = (
    Fault("freeze", "nats"),
    Fault("freeze", "redis"),
    Fault("freeze", "postgres"),
    Fault("freeze", "auth-bridge"),
    Fault("freeze", "main-bridge"),
    Fault("freeze", "auth-celery"),
    # Killed with requests in flight: their transactions either committed (the answer may be lost) or not.
    Fault("kill", "auth-bridge"),
    # The Celery worker is the outbox relay (and runs beat): killed holding leased rows, some maybe published.
    Fault("kill mid-batch", "auth-celery"),
    # The JetStream consumer, killed with fetched events part-applied and unacknowledged.
    Fault("kill mid-batch", "main-bridge"),
    Fault("kill", "nats"),
)
# A killed process stays down this long before it is started again.
DOWN = 4.0
# How long a process is stalled before a mid-batch kill, so that a batch of work waits for it.
PILE_UP = 5.0
MID_BATCH_WATCH = 5.0


def _fail_closed(session: Session) -> list[str]:
    """Protected routes with valid credentials, while the session store is frozen: never a 2xx."""
    problems = []
    for method, path, bearer, csrf in PROTECTED:
        reply = session.call(method, path, bearer=bearer, csrf=csrf, timeout=20)
        if 200 <= reply.status < 300 or reply.status not in (401, 503):
            problems.append(f"fail-open: {method} {path} answered {reply.status} with Redis frozen")
    return problems


def _recover(system: System) -> tuple[float, str]:
    """Seconds until readiness is 200 everywhere and a sign-up, a login and a read all succeed; and the
    probe's e-mail, an accepted sign-up like any other."""
    started = time.monotonic()
    system.wait_ready(RECOVERY_TIMEOUT)
    statuses: list[int] = []
    while time.monotonic() - started < RECOVERY_TIMEOUT:
        session = Session(system.gateway)
        user = unique_user()
        signup = session.call("POST", "/api/signup", user)
        login = session.login("user@test.com")
        read = session.call("GET", "/api/user?limit=1", bearer=True)
        statuses = [signup.status, login.status, read.status]
        if statuses == [200, 200, 200]:
            return time.monotonic() - started, user["email"]
        time.sleep(0.5)
    raise SystemUnavailable(f"sign-up/login/read still answer {statuses} {RECOVERY_TIMEOUT:.0f} s after the fault")


def _kill_mid_batch(checker: Checker, target: Target) -> bool:
    """Stall the target while work piles up, resume it, and SIGKILL it as soon as a batch is part-way.

    True when the kill caught a batch in flight (else it killed the target anyway, after the watch).
    """
    assert target.kill is not None
    caught = False
    with contextlib.ExitStack() as stack:
        target.freeze()
        # Thawed however this ends (a second thaw is a no-op).
        stack.callback(target.thaw)
        time.sleep(PILE_UP)
        # The watch's baseline is taken while the target is still stopped.
        in_flight = stack.enter_context(checker.batch_watch(target.name))
        target.thaw()
        deadline = time.monotonic() + MID_BATCH_WATCH
        while time.monotonic() < deadline and not caught:
            caught = in_flight()
        target.kill()
    return caught


def run_fault(system: System, checker: Checker, fault: Fault) -> Row:
    started = time.monotonic()
    row = Row(section="faults", name=fault.name)
    target = system.target(fault.target)
    tally = Tally()
    probe = Session(system.gateway)
    if probe.login("admin@test.com").status != 200:
        row.problems.append("could not log in before the fault")
    readiness: dict[str, int] = {}
    load = Load(
        system.gateway,
        mix=FAULT_MIX,
        clients=CLIENTS,
        rate=RATE,
        seconds=BEFORE + DURING + AFTER + 60,
        limit=int(RATE * (BEFORE + DURING + AFTER) * 2),
        tally=tally,
    )
    with load:
        load.phase = "before"
        time.sleep(BEFORE)
        load.phase = "fault"
        injected = time.monotonic()
        if fault.action == "freeze":
            with frozen(target):
                if fault.target == "redis":
                    row.problems += _fail_closed(probe)
                readiness = system.readiness()
                time.sleep(max(0.0, DURING - (time.monotonic() - injected)))
        else:
            if target.kill is None or target.start is None:
                raise ValueError(f"verify cannot restart {fault.target}")
            if fault.action == "kill mid-batch":
                row.details["mid_batch"] = _kill_mid_batch(checker, target)
            else:
                target.kill()
            time.sleep(DOWN)
            readiness = system.readiness()
            target.start()
            time.sleep(max(0.0, DURING - (time.monotonic() - injected)))
        load.phase = "after"
        time.sleep(AFTER)
    dead = system.dead()
    if dead:
        row.problems.append(f"not running after the fault: {', '.join(dead)}")
    try:
        recovered, email = _recover(system)
        tally.accept({"email": email})
        row.details["recovered_seconds"] = round(recovered, 1)
    except SystemUnavailable as exc:
        row.problems.append(f"did not recover: {exc}")
    snap = checker.converge([user["email"] for user in tally.accepted])
    row.accepted, row.stored, row.lost = len(tally.accepted), snap.stored, snap.lost
    row.duplicated = snap.duplicates
    row.server_errors = tally.server_errors
    row.problems += snap.problems()
    if tally.violations:
        row.problems += tally.examples[:5]
        if tally.violations > 5:
            row.problems.append(f"... {tally.violations} contract violations in all")
    row.details.update({"load": tally.summary(), "consistency": snap.as_dict(), "readiness_during_fault": readiness})
    row.seconds = time.monotonic() - started
    say(
        f"  {fault.name:<20} accepted {row.accepted:4}  stored {row.stored:4}  lost {row.lost}  "
        f"dup {row.duplicated}  500s {row.server_errors}  requests {tally.total}  "
        f"converged {snap.seconds:.1f}s  {'ok' if row.passed else 'FAIL'}"
    )
    return row


def durability_settings(system: System, checker: Checker) -> Row:
    """What the faults cannot show on one machine: a power cut. The production NATS config (docker/nats.conf)
    must fsync before acknowledging, and the stream must de-duplicate a republish by a relay whose lease ran
    out (docs/DURABILITY.md)."""
    started = time.monotonic()
    row = Row(section="faults", name="durability settings")
    varz = _nats_conf_varz(REPO_ROOT / "docker" / "nats.conf")
    config = varz.get("jetstream", {}).get("config", {})
    row.details["nats_conf"] = {key: config.get(key) for key in ("sync_always", "max_storage", "max_memory")}
    if config.get("sync_always") is not True:
        row.problems.append(f"docker/nats.conf does not fsync every write (jetstream config: {config})")
    stream = checker.stream_config()
    row.details["stream"] = stream
    if stream.get("storage") != "file":
        row.problems.append(f"stream {checker.stream} is not on file storage: {stream.get('storage')}")
    lease = float(os.environ.get("OUTBOX_LEASE_SECONDS", "30"))
    if float(stream.get("duplicate_window", 0)) < 2 * lease:
        row.problems.append(
            f"duplicate window {stream.get('duplicate_window')} s is under twice the relay lease ({lease:g} s)"
        )
    row.seconds = time.monotonic() - started
    say(f"  {row.name:<20} {row.details}  {'ok' if row.passed else 'FAIL'}")
    return row


def _nats_conf_varz(conf: Path) -> dict[str, Any]:
    """/varz of a throwaway nats-server run with the production file (flags put it on loopback, in a temp dir)."""
    port, monitor = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="verify-nats-") as store:
        argv = [str(NatsServer.binary()), "-c", str(conf), "-a", "127.0.0.1", "-p", str(port)]
        argv += ["-m", str(monitor), "-sd", store]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                reply = request(("127.0.0.1", monitor), "GET", "/varz", timeout=2)
                if reply.status == 200:
                    return dict(reply.json())
                if process.poll() is not None:
                    raise SystemUnavailable(f"nats-server -c {conf} exited with {process.returncode}")
                time.sleep(0.1)
            raise SystemUnavailable(f"nats-server -c {conf} did not answer /varz")
        finally:
            process.terminate()
            process.wait(10)


def run(system: System, checker: Checker, selected: Callable[[str], bool]) -> list[Row]:
    say("faults: each under load (sign-ups, logins, refreshes, reads), then recovery and data checks")
    rows = [durability_settings(system, checker)] if selected("durability settings") else []
    return rows + [run_fault(system, checker, fault) for fault in FAULTS if selected(fault.name)]
