"""Inbox writes: the idempotency key of an applied message, and parking and retrying dead letters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from common.inbox.models import DeadLetter, InboxMessage
from common.messaging.jetstream import decode_event

log = logging.getLogger(__name__)


class InvalidMessage(ValueError):
    """The message can never be applied (undecodable, unknown type, invalid data): park it at once, never retry."""


class EventHandler(Protocol):
    """Applies one event exactly once: records its inbox row in the same transaction as its effect."""

    def __call__(self, *, event_type: str, payload: dict[str, Any], message_id: str) -> object: ...


def inbox_record(*, message_id: str, subject: str) -> bool:
    """Take a message's idempotency key inside the caller's transaction; False if it was applied before.

    One statement, no savepoint: a duplicate is not an error. A concurrent transaction inserting the same key
    makes this one wait for its outcome, so two consumers can never both apply one message.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("inbox_record must run inside the transaction of the message's effect")
    with connection.cursor() as cursor:
        cursor.execute(_INBOX_INSERT_SQL, [message_id, subject[:200], timezone.now()])
        return cursor.rowcount == 1


def _inbox_insert_sql() -> str:
    table = connection.ops.quote_name(InboxMessage._meta.db_table)
    return (
        f"INSERT INTO {table} (message_id, subject, processed_at) VALUES (%s, %s, %s)"  # noqa: S608 - model's table
        " ON CONFLICT (message_id) DO NOTHING"
    )


_INBOX_INSERT_SQL = _inbox_insert_sql()


def dead_letter_park(
    *,
    consumer: str,
    message_id: str,
    subject: str,
    payload: bytes,
    headers: dict[str, str],
    error: str,
    deliveries: int,
    stream_sequence: int | None,
) -> DeadLetter:
    """Park a message that cannot be applied; parking it again (a lost term) updates the open letter, not a copy."""
    with transaction.atomic():
        letter = (
            DeadLetter.objects.select_for_update()
            .filter(consumer=consumer, message_id=message_id, resolved_at__isnull=True)
            .first()
        )
        if letter is None:
            letter = DeadLetter(consumer=consumer, message_id=message_id)
        letter.subject = _storable(subject)[:200]
        letter.payload = _storable(payload.decode("utf-8", errors="replace"))
        letter.headers = {_storable(k): _storable(v) for k, v in headers.items()}
        letter.error = _storable(error)
        letter.deliveries = deliveries
        letter.stream_sequence = stream_sequence
        letter.save()
    return letter


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL, and a parked message must never fail to park for that."""
    return text.replace("\x00", "\ufffd")


@dataclass(frozen=True)
class RetryResult:
    is_applied: bool
    error: str = ""


def dead_letter_retry(*, letter: DeadLetter, handler: EventHandler) -> RetryResult:
    """Apply a parked message again through its consumer's handler, under its ORIGINAL message id.

    Applying directly (rather than re-publishing) keeps the shared stream the auth service's alone, and the
    original id keeps the retry idempotent: retrying twice, or after the event got applied anyway, is a no-op.
    """
    now = timezone.now()
    try:
        envelope = decode_event(letter.payload)
        handler(event_type=envelope.type, payload=envelope.data, message_id=letter.message_id)
    except Exception as exc:  # whatever failed is recorded on the letter for the operator; nothing was applied
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("dead letter retry failed", extra={"message_id": letter.message_id, "error": error}, exc_info=True)
        DeadLetter.objects.filter(pk=letter.pk).update(retried_at=now, retries=F("retries") + 1, error=error)
        return RetryResult(is_applied=False, error=error)
    DeadLetter.objects.filter(pk=letter.pk).update(retried_at=now, retries=F("retries") + 1, resolved_at=now)
    return RetryResult(is_applied=True)
