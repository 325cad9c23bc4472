"""Pure retry decisions: exponential backoff with jitter, capped (outbox rows and redelivered messages)."""

from __future__ import annotations

from datetime import datetime, timedelta


def exponential_backoff(attempt: int, *, base: float, cap: float, jitter: float = 0.0, rand: float = 0.0) -> float:
    """Seconds to wait before retry number `attempt` (1-based): min(cap, base·2^(attempt-1)), shortened by jitter.

    `rand` is a uniform draw in [0, 1) supplied by the caller so the function stays deterministic under test.
    Jitter only shortens the delay (never past the cap), so relays that failed together do not retry together.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if base <= 0 or cap <= 0:
        raise ValueError("base and cap must be positive")
    if not 0.0 <= jitter < 1.0 or not 0.0 <= rand < 1.0:
        raise ValueError("jitter and rand are fractions in [0, 1)")
    # The exponent is bounded so a row retried for weeks never overflows a float.
    delay = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return delay * (1.0 - jitter * rand)


def outbox_next_attempt_at(
    *, now: datetime, attempts: int, base: float, cap: float, jitter: float = 0.2, rand: float = 0.0
) -> datetime:
    """When a row that has failed `attempts` times may be tried again. Rows are never given up on: they are facts."""
    return now + timedelta(seconds=exponential_backoff(attempts, base=base, cap=cap, jitter=jitter, rand=rand))
