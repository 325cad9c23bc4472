"""The retry policies, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.inbox.policies import is_last_delivery, redelivery_delay
from common.outbox.policies import exponential_backoff, outbox_next_attempt_at


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (8, 128.0), (9, 256.0), (10, 300.0)])
def test_backoff_doubles_per_attempt_up_to_the_cap(attempt: int, expected: float) -> None:
    assert exponential_backoff(attempt, base=1.0, cap=300.0) == expected


def test_backoff_of_a_row_retried_for_weeks_stays_at_the_cap() -> None:
    assert exponential_backoff(1_000_000, base=1.0, cap=300.0) == 300.0


def test_jitter_only_shortens_the_delay_and_never_exceeds_the_cap() -> None:
    assert exponential_backoff(3, base=1.0, cap=300.0, jitter=0.2, rand=0.0) == 4.0
    assert exponential_backoff(3, base=1.0, cap=300.0, jitter=0.2, rand=0.5) == pytest.approx(3.6)
    assert exponential_backoff(20, base=1.0, cap=300.0, jitter=0.2, rand=0.999) == pytest.approx(240.06)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0, "base": 1.0, "cap": 10.0},
        {"attempt": 1, "base": 0.0, "cap": 10.0},
        {"attempt": 1, "base": 1.0, "cap": 10.0, "jitter": 1.0},
        {"attempt": 1, "base": 1.0, "cap": 10.0, "rand": 1.0},
    ],
)
def test_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        exponential_backoff(**kwargs)  # type: ignore[arg-type]


def test_next_attempt_is_now_plus_the_backoff() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert outbox_next_attempt_at(now=now, attempts=4, base=0.5, cap=60.0, rand=0.0) == now + timedelta(seconds=4)


def test_redelivery_delay_grows_with_deliveries() -> None:
    assert [redelivery_delay(n, base=1.0, cap=60.0) for n in (0, 1, 2, 3, 7, 8)] == [1.0, 1.0, 2.0, 4.0, 60.0, 60.0]


@pytest.mark.parametrize(
    ("delivered", "max_deliver", "expected"), [(1, 5, False), (4, 5, False), (5, 5, True), (6, 5, True), (9, -1, False)]
)
def test_last_delivery(delivered: int, max_deliver: int, expected: bool) -> None:
    assert is_last_delivery(delivered, max_deliver) is expected
