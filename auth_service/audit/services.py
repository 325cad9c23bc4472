"""Writes of the security log: append an event stamped with its request context, and purge old events."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.utils import timezone

from auth_service.audit.context import client_var
from auth_service.audit.crypto import identifier_digest
from auth_service.audit.models import SecurityEvent
from common.conf.context import request_id_var
from common.contracts.errors import ServiceError

USER_AGENT_MAX_LENGTH = 200


def _uuid(value: str | uuid.UUID | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _ip(value: str | None) -> str | None:
    # The column is PostgreSQL inet: anything that is not an address would fail the insert (and the request).
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def security_event_record(
    *,
    kind: str,
    outcome: str = SecurityEvent.Outcome.SUCCESS,
    user_id: str | uuid.UUID | None = None,
    actor_id: str | uuid.UUID | None = None,
    identifier: str | None = None,
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one event with the current request id, IP and user agent. Callers never pass a secret in `detail`.

    `identifier` (the e-mail or username given for an account that does not exist) is stored only as a keyed hash.
    Inside a transaction the event commits or rolls back with the change it describes.

    One parameterised INSERT rather than a model save: every login and refresh writes one, and the ORM's
    per-call query compilation cost more CPU than the rest of a refresh's database work.
    """
    client = client_var.get()
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL,
            (
                timezone.now(),
                kind,
                outcome,
                _uuid(user_id),
                _uuid(actor_id),
                identifier_digest(identifier) if identifier else "",
                _ip(client.ip if client else None),
                ((client.user_agent if client else None) or "")[:USER_AGENT_MAX_LENGTH],
                (request_id_var.get() or "")[:128],
                reason[:40],
                orjson.dumps(dict(detail or {})).decode(),
            ),
        )


def _insert_sql() -> str:
    table = connection.ops.quote_name(SecurityEvent._meta.db_table)
    columns = (
        "created_at, kind, outcome, user_id, actor_id, identifier_digest, ip, user_agent, request_id, reason, detail"
    )
    values = "%s, %s, %s, %s, %s, %s, %s::inet, %s, %s, %s, %s::jsonb"
    return f"INSERT INTO {table} ({columns}) VALUES ({values})"  # noqa: S608 - the model's table name only


_INSERT_SQL = _insert_sql()


@contextmanager
def failure_recorded(
    kind: str,
    *,
    user_id: str | uuid.UUID | None = None,
    actor_id: str | uuid.UUID | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Record a failed `kind` (reason: the error's code) when the block raises a ServiceError, which propagates.

    Open it outside the block's transaction: the event is then written after the rollback, and so kept.
    """
    try:
        yield
    except ServiceError as exc:
        security_event_record(
            kind=kind,
            outcome=SecurityEvent.Outcome.FAILURE,
            user_id=user_id,
            actor_id=actor_id,
            reason=exc.code,
            detail=detail,
        )
        raise


def security_events_purge(*, now: datetime | None = None) -> int:
    """Delete events older than SECURITY_EVENT_RETENTION_DAYS; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=int(settings.SECURITY_EVENT_RETENTION_DAYS))
    deleted, _ = SecurityEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
