"""Writing to the outbox (inside the change's transaction), and the relay's claim/settle steps on its rows."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from common.contracts.rpc import to_builtins
from common.outbox.models import OutboxEvent
from common.outbox.policies import outbox_next_attempt_at


def outbox_append(
    *, aggregate_id: uuid.UUID | str, event_type: str, payload: dict[str, Any] | msgspec.Struct
) -> OutboxEvent:
    """Record an event atomically with the change; after commit, nudge the relay so latency stays low. A payload
    given as its contract's Struct (common/contracts/events.py) is stored as the contract spells it."""
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_append must run inside transaction.atomic() with the change it records")
    event = OutboxEvent.objects.create(
        aggregate_id=aggregate_id if isinstance(aggregate_id, uuid.UUID) else uuid.UUID(str(aggregate_id)),
        event_type=event_type,
        payload=to_builtins(payload) if isinstance(payload, msgspec.Struct) else payload,
    )
    kick_path = settings.OUTBOX_KICK
    if kick_path:
        kick: Callable[[], None] = import_string(kick_path)
        transaction.on_commit(kick)
    return event


@dataclass(frozen=True)
class ClaimedEvent:
    """What the relay needs to publish one row, read while the row was leased."""

    id: int
    event_id: uuid.UUID
    aggregate_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int


@dataclass(frozen=True)
class Claim:
    token: uuid.UUID
    events: list[ClaimedEvent]


@dataclass(frozen=True)
class Failure:
    event: ClaimedEvent
    error: str


def outbox_claim(*, batch_size: int, lease_seconds: float) -> Claim:
    """Lease the next publishable rows, in id order, in one statement (its own short transaction; no I/O under it).

    A row is publishable when it is unpublished, due, not leased by a live relay, and no earlier event of its
    aggregate is still unpublished outside this claim (backing off, leased by another relay, or being claimed or
    settled by one right now): so a failing row holds back only its own aggregate, and a later event can never
    leave ahead of an earlier one.
    """
    token = uuid.uuid4()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {"now": now, "limit": batch_size, "until": now + timedelta(seconds=lease_seconds), "token": token},
        )
        rows = cursor.fetchall()
    # Django has psycopg hand jsonb over as text (JSONField decodes it); this raw query decodes it itself.
    events = [
        ClaimedEvent(id, event_id, aggregate_id, event_type, orjson.loads(payload), created_at, attempts)
        for id, event_id, aggregate_id, event_type, payload, created_at, attempts in sorted(rows)
    ]
    return Claim(token=token, events=events)


def _claim_sql() -> str:
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    # `candidates` skips rows behind a waiting predecessor in SQL, so blocked aggregates never fill the batch.
    # SKIP LOCKED passes over rows another relay is claiming or settling at this moment, which that filter
    # cannot see; `kept` therefore drops any row with an earlier unpublished row that is not in this claim.
    return f"""
        WITH candidates AS (
            SELECT o.id, o.aggregate_id FROM {table} o
            WHERE o.published_at IS NULL
              AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= %(now)s)
              AND (o.claimed_until IS NULL OR o.claimed_until <= %(now)s)
              AND NOT EXISTS (
                  SELECT 1 FROM {table} w
                  WHERE w.aggregate_id = o.aggregate_id AND w.published_at IS NULL AND w.id < o.id
                    AND (w.next_attempt_at > %(now)s OR w.claimed_until > %(now)s)
              )
            ORDER BY o.id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        ),
        kept AS (
            SELECT c.id FROM candidates c
            WHERE NOT EXISTS (
                SELECT 1 FROM {table} e
                WHERE e.aggregate_id = c.aggregate_id AND e.published_at IS NULL AND e.id < c.id
                  AND e.id NOT IN (SELECT id FROM candidates)
            )
        )
        UPDATE {table} t SET claimed_until = %(until)s, claim_token = %(token)s
        FROM kept WHERE t.id = kept.id
        RETURNING t.id, t.event_id, t.aggregate_id, t.event_type, t.payload, t.created_at, t.attempts
    """  # noqa: S608 - the only interpolation is the model's own table name; values are parameters


_CLAIM_SQL = _claim_sql()


def outbox_mark_published(*, ids: list[int]) -> int:
    """Record PubAcks. Whoever holds the lease now, the event is in the stream, so the row is done.

    One UPDATE for the whole batch, its ids bound as one array parameter.
    """
    if not ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(_MARK_PUBLISHED_SQL, [timezone.now(), list(ids)])
        return int(cursor.rowcount)


_MARK_PUBLISHED_SQL = f"""
    UPDATE {connection.ops.quote_name(OutboxEvent._meta.db_table)}
    SET published_at = %s, claimed_until = NULL, claim_token = NULL, next_attempt_at = NULL, last_error = ''
    WHERE id = ANY(%s) AND published_at IS NULL
"""  # noqa: S608 - the only interpolation is the model's own table name; values are parameters


def outbox_mark_failed(*, token: uuid.UUID, failures: list[Failure], base: float, cap: float) -> int:
    """Count a failed attempt and schedule the next one; a row re-leased by another relay meanwhile is left alone."""
    if not failures:
        return 0
    now = timezone.now()
    with transaction.atomic():
        current = {
            row.id: row
            for row in OutboxEvent.objects.filter(
                id__in=[f.event.id for f in failures], claim_token=token, published_at__isnull=True
            )
            .select_for_update()
            .only("id", "attempts")
        }
        updated: list[OutboxEvent] = []
        for failure in failures:
            row = current.get(failure.event.id)
            if row is None:
                continue
            row.attempts += 1
            row.last_error = failure.error[:1000]
            row.next_attempt_at = outbox_next_attempt_at(
                now=now, attempts=row.attempts, base=base, cap=cap, rand=random.random()
            )
            row.claimed_until = None
            row.claim_token = None
            updated.append(row)
        OutboxEvent.objects.bulk_update(
            updated, ["attempts", "last_error", "next_attempt_at", "claimed_until", "claim_token"]
        )
    return len(updated)


def outbox_release(*, token: uuid.UUID, ids: list[int]) -> int:
    """Give back rows that were leased but not sent (their predecessor failed): no attempt is counted."""
    if not ids:
        return 0
    return OutboxEvent.objects.filter(id__in=ids, claim_token=token, published_at__isnull=True).update(
        claimed_until=None, claim_token=None
    )
