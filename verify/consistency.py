"""Did every accepted sign-up reach main_api exactly once? Reads the auth and main databases and the stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

CONVERGE_TIMEOUT = 120.0
_POLL = 0.5


@dataclass
class Snapshot:
    """The state of the pipeline auth → outbox → JetStream → main_api for a set of accepted sign-ups."""

    accepted: int = 0
    in_auth: int = 0
    # Accepted sign-ups present in main_api exactly once, live, at the auth service's version.
    stored: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: int = 0
    stale: int = 0
    outbox_total: int = 0
    outbox_pending: int = 0
    # Published outbox events main_api has no inbox row for (not applied yet, or lost on the way).
    unapplied: int = 0
    # Inbox rows no outbox event explains: something was applied that auth never emitted.
    foreign: int = 0
    dead_letters: int = 0
    stream_messages: int = 0
    # Messages in the stream beyond one per published event: a republish JetStream did not de-duplicate.
    stream_duplicates: int = 0
    seconds: float = 0.0

    @property
    def settled(self) -> bool:
        return not self.missing and not self.stale and self.outbox_pending == 0 and self.unapplied == 0

    @property
    def lost(self) -> int:
        return len(self.missing) + (self.accepted - self.in_auth)

    @property
    def duplicates(self) -> int:
        """Everything that says "more than once": a user twice in main_api, an inbox row auth never emitted, a
        message twice in the stream."""
        return self.duplicated + self.foreign + self.stream_duplicates

    def problems(self) -> list[str]:
        """What is wrong beyond the lost and duplicated counts (the summary table has columns for those)."""
        problems = []
        if self.stale:
            problems.append(f"{self.stale} accepted sign-ups behind the auth service's version in main_api")
        if self.outbox_pending or self.unapplied:
            problems.append(
                f"not converged: outbox pending {self.outbox_pending}, published not applied {self.unapplied}"
            )
        if self.dead_letters:
            problems.append(f"{self.dead_letters} dead letters in main_api")
        if self.lost:
            problems.append(f"lost (first few): {self.missing[:3]}")
        return problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["missing"] = self.missing[:20]
        data["lost"] = self.lost
        return data


def _count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, kw_only=True)
class Checker:
    """Reads main_api's read model and inbox, the auth service's users and outbox, and the stream's state."""

    database_url: str = field(repr=False)  # may carry a password
    auth_db: str
    main_db: str
    nats_url: str
    stream: str
    durable: str

    def _rows(self, dbname: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, dbname=dbname, connect_timeout=10, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def snapshot(self, emails: list[str]) -> Snapshot:
        snap = Snapshot(accepted=len(emails))
        auth_users = {
            email: (str(uid), int(version))
            for uid, email, version in self._rows(
                self.auth_db, "SELECT id, email, version FROM accounts_user WHERE email = ANY(%s)", (emails,)
            )
        }
        snap.in_auth = len(auth_users)
        main_rows = self._rows(
            self.main_db,
            "SELECT id, email, version FROM users_user WHERE email = ANY(%s) AND NOT is_deleted",
            (emails,),
        )
        per_email = Counter(email for _, email, _ in main_rows)
        main_versions = {str(uid): int(version) for uid, _, version in main_rows}
        for email in emails:
            copies = per_email.get(email, 0)
            if copies == 0:
                snap.missing.append(email)
            elif copies > 1:
                snap.duplicated += 1
            else:
                uid, version = auth_users.get(email, ("", 0))
                if main_versions.get(uid) == version:
                    snap.stored += 1
                else:
                    snap.stale += 1
        events = self._rows(self.auth_db, "SELECT event_id::text, published_at IS NOT NULL FROM outbox_outboxevent")
        published = {event_id for event_id, is_published in events if is_published}
        snap.outbox_total = len(events)
        snap.outbox_pending = len(events) - len(published)
        inbox = {row[0] for row in self._rows(self.main_db, "SELECT message_id FROM inbox_inboxmessage")}
        snap.unapplied = len(published - inbox)
        snap.foreign = len(inbox - {event_id for event_id, _ in events})
        snap.dead_letters = int(
            self._rows(self.main_db, "SELECT count(*) FROM inbox_deadletter WHERE resolved_at IS NULL")[0][0]
        )
        snap.stream_messages = self._stream_messages()
        snap.stream_duplicates = max(0, snap.stream_messages - len(published))
        return snap

    def stream_config(self) -> dict[str, Any]:
        """The provisioned stream's storage and de-duplication settings, as the server reports them."""
        from common.messaging.client import open_connection

        async def config() -> dict[str, Any]:
            nc = await open_connection(
                self.nats_url, name="verify-consistency", connect_timeout=5, allow_reconnect=False
            )
            try:
                info = await nc.jetstream().stream_info(self.stream)
            finally:
                await nc.close()
            cfg = info.config
            # nats-py hands back enum members or their plain string values depending on the path taken.
            return {
                "storage": str(getattr(cfg.storage, "value", cfg.storage)),
                "duplicate_window": cfg.duplicate_window,
                "max_age": cfg.max_age,
                "replicas": cfg.num_replicas,
                "discard": str(getattr(cfg.discard, "value", cfg.discard)),
            }

        return asyncio.run(config())

    def _stream_messages(self) -> int:
        from common.messaging.client import open_connection

        async def count() -> int:
            nc = await open_connection(
                self.nats_url, name="verify-consistency", connect_timeout=5, allow_reconnect=False
            )
            try:
                info = await nc.jetstream().stream_info(self.stream)
                return int(info.state.messages)
            finally:
                await nc.close()

        return asyncio.run(count())

    @contextlib.contextmanager
    def batch_watch(self, process: str) -> Iterator[Callable[[], bool]]:
        """A fast poll (on a connection kept open) that is true while `process` is part-way through a batch.

        The relay (auth-celery): outbox rows leased and not yet marked published. The consumer (main-bridge):
        events delivered to it and not acknowledged yet (fetched, being applied, or applied and not yet acked).
        """
        if process == "auth-celery":
            leased = "SELECT count(*) FROM outbox_outboxevent WHERE published_at IS NULL AND claimed_until > now()"
            with psycopg.connect(self.database_url, dbname=self.auth_db, autocommit=True) as conn:
                yield lambda: _count(conn, leased) > 0
        elif process == "main-bridge":
            from common.messaging.client import open_connection

            with asyncio.Runner() as runner:
                nc = runner.run(
                    open_connection(self.nats_url, name="verify-consistency", connect_timeout=5, allow_reconnect=False)
                )
                js = nc.jetstream()

                async def ack_pending() -> int:
                    return int((await js.consumer_info(self.stream, self.durable)).num_ack_pending)

                try:
                    yield lambda: runner.run(ack_pending()) > 0
                finally:
                    runner.run(nc.close())
        else:
            raise ValueError(f"no batch to watch in {process}")

    def converge(self, emails: list[str], timeout: float = CONVERGE_TIMEOUT) -> Snapshot:
        """Poll until the pipeline has settled for these sign-ups (or timeout); the last snapshot either way."""
        started = time.monotonic()
        while True:
            snap = self.snapshot(emails)
            snap.seconds = round(time.monotonic() - started, 1)
            if snap.settled or time.monotonic() - started > timeout:
                return snap
            time.sleep(_POLL)
