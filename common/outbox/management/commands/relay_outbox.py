"""`relay_outbox`: publish pending outbox rows once, or keep relaying with --loop until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from common.outbox.relay import relay_pending

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Publish pending outbox rows to JetStream (once by default; --loop to keep going until SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep relaying until SIGTERM/SIGINT")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds to sleep when nothing is pending")
        parser.add_argument("--batch-size", type=int, default=None, help="rows per batch (default OUTBOX_BATCH_SIZE)")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"] or int(settings.OUTBOX_BATCH_SIZE)
        if not options["loop"]:
            published = relay_pending(batch_size=batch_size)
            self.stdout.write(f"published {published} event(s)")
            return
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        total = 0
        self.stdout.write("relaying until SIGTERM")
        self.stdout.flush()
        try:
            while not stop.is_set():
                # A dead connection (database restart) is replaced here rather than failing every later turn.
                close_old_connections()
                try:
                    # A few batches per turn, so a stop request waits for one short turn, never for a backlog.
                    published = relay_pending(batch_size=batch_size, max_batches=10)
                except DatabaseError:
                    log.exception("relay turn failed; retrying")
                    published = 0
                total += published
                if not published:
                    stop.wait(options["interval"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(f"stopped; published {total} event(s)")
