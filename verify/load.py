"""A bounded load generator: a few client threads signing up, logging in, refreshing and reading, at a paced rate."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from verify.client import SEEDED, Reply, Session, envelope_problem, unique_user

# What a client may see while a dependency is down: the service answers 503/504 in the envelope, never 500.
UNAVAILABLE = frozenset({503, 504})
# Phases with nothing injected (and the stack ready): there even 503/504 are failures.
STEADY_PHASES = frozenset({"steady", "before"})
_KEPT_EXAMPLES = 20


@dataclass
class Tally:
    """Every outcome of a run, counted per phase, request kind and status; thread-safe."""

    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    accepted: list[dict[str, str]] = field(default_factory=list)
    # Sign-ups answered with something other than 200 or a 4xx: they may or may not have been stored.
    uncertain: int = 0
    server_errors: int = 0
    violations: int = 0
    examples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, phase: str, kind: str, reply: Reply, problem: str | None) -> None:
        with self._lock:
            self.statuses[(phase, kind, reply.status)] += 1
            self.latencies.append(reply.elapsed)
            if reply.status == 500:
                self.server_errors += 1
            if problem is not None:
                self.violations += 1
                if len(self.examples) < _KEPT_EXAMPLES:
                    self.examples.append(f"[{phase}] {kind}: {problem}")

    def accept(self, user: dict[str, str]) -> None:
        with self._lock:
            self.accepted.append(user)

    def maybe_stored(self) -> None:
        with self._lock:
            self.uncertain += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def count(self, predicate: Callable[[str, str, int], bool]) -> int:
        with self._lock:
            return sum(n for (phase, kind, status), n in self.statuses.items() if predicate(phase, kind, status))

    def summary(self) -> dict[str, object]:
        with self._lock:
            by_status: Counter[str] = Counter()
            for (phase, kind, status), n in self.statuses.items():
                by_status[f"{phase}/{kind}/{status}"] += n
            return {
                "requests": sum(self.statuses.values()),
                "statuses": dict(sorted(by_status.items())),
                "accepted_signups": len(self.accepted),
                "uncertain_signups": self.uncertain,
                "server_errors": self.server_errors,
                "violations": self.violations,
                "examples": list(self.examples),
            }


def problem_of(reply: Reply, *, strict: bool) -> str | None:
    """Why a reply breaks the contract; `strict` (no fault injected) also refuses 503/504."""
    if reply.status == 0:
        return f"no answer: {reply.error}"
    if reply.status >= 500 and (strict or reply.status not in UNAVAILABLE):
        return f"{reply.status}: {reply.body[:160]!r}"
    return envelope_problem(reply)


class Pacer:
    """Hands out request slots at `rate` per second until the deadline or the request limit."""

    def __init__(self, rate: float, seconds: float, limit: int) -> None:
        self.interval = 1.0 / rate
        self.deadline = time.monotonic() + seconds
        self.limit = limit
        self.issued = 0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> bool:
        """Block until the next slot; False when the run is over."""
        with self._lock:
            now = time.monotonic()
            if self.issued >= self.limit or now >= self.deadline or stop.is_set():
                return False
            slot = max(self._next, now)
            self._next = slot + self.interval
            self.issued += 1
        delay = slot - time.monotonic()
        return not (delay > 0 and stop.wait(delay)) and time.monotonic() < self.deadline


class Load:
    """Client threads running a weighted mix of actions until stopped, the deadline or the request limit.

    Each action is one or two requests through the shared pacer, so the rate holds whatever the latency.
    `phase` labels what is being injected meanwhile; in a steady phase 503/504 count as violations too.
    """

    def __init__(
        self,
        address: tuple[str, int],
        *,
        mix: Mapping[str, float],
        clients: int,
        rate: float,
        seconds: float,
        limit: int,
        tally: Tally | None = None,
        strict: bool = False,
    ) -> None:
        self.address = address
        self.mix = dict(mix)
        self.clients = clients
        self.pacer = Pacer(rate, seconds, limit)
        self.tally = tally or Tally()
        self.strict = strict
        self.phase = "steady"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            # A request in flight ends within its own timeout.
            thread.join(30)

    def wait(self) -> None:
        """Until the pacer's deadline or limit ends the run."""
        for thread in self._threads:
            thread.join(self.pacer.deadline - time.monotonic() + 30)

    # -- the clients ------------------------------------------------------------------------------------------

    def _client(self, index: int) -> None:
        rng = random.Random(index)
        session = Session(self.address)
        actions = list(self.mix)
        weights = [self.mix[name] for name in actions]
        while not self._stop.is_set():
            action = rng.choices(actions, weights)[0]
            if not getattr(self, f"_{action}")(session, rng):
                return

    def _send(self, kind: str, send: Callable[[], Reply]) -> Reply | None:
        if not self.pacer.wait(self._stop):
            return None
        phase = self.phase
        reply = send()
        # A request sent just before a fault and answered during it saw the fault: steady only if both were.
        strict = self.strict or (phase in STEADY_PHASES and self.phase in STEADY_PHASES)
        self.tally.record(phase, kind, reply, problem_of(reply, strict=strict))
        return reply

    def _signup(self, session: Session, rng: random.Random) -> bool:
        user = unique_user()
        # A fresh session: sign-up needs no credentials and must not send any.
        reply = self._send("signup", lambda: Session(self.address).call("POST", "/api/signup", user))
        if reply is None:
            return False
        if reply.status == 200:
            self.tally.accept(user)
        elif reply.status == 0 or reply.status >= 500:
            self.tally.maybe_stored()
        return True

    def _login(self, session: Session, rng: random.Random) -> bool:
        # End the previous session first: a client that only ever logs in would pile up live sessions.
        if session.token is not None and session.cookies and self._send("logout", session.logout) is None:
            return False
        slug = rng.choice(SEEDED)
        return self._send("login", lambda: session.login(slug)) is not None

    def _refresh(self, session: Session, rng: random.Random) -> bool:
        if not session.cookies:
            return self._login(session, rng)
        return self._send("refresh", session.refresh) is not None

    def _read(self, session: Session, rng: random.Random) -> bool:
        if session.token is None:
            return self._login(session, rng)
        offset = rng.randint(0, 20)
        reply = self._send("read", lambda: session.call("GET", f"/api/user?limit=5&offset={offset}", bearer=True))
        if reply is None:
            return False
        if reply.status == 401:
            session.token = None
        return True
