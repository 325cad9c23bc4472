"""Pure redelivery decisions of the inbox consumer."""

from __future__ import annotations

from common.outbox.policies import exponential_backoff


def redelivery_delay(num_delivered: int, *, base: float, cap: float) -> float:
    """How long JetStream should wait before delivering a failed message again (grows with each delivery)."""
    return exponential_backoff(max(num_delivered, 1), base=base, cap=cap)


def is_last_delivery(num_delivered: int, max_deliver: int) -> bool:
    """True when JetStream will not deliver the message again (max_deliver <= 0 means unlimited)."""
    return max_deliver > 0 and num_delivered >= max_deliver
