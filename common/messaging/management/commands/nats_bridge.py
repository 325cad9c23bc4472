"""`manage_X.py nats_bridge`: serve this project's NATS handlers (and its background consumers) until SIGTERM."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from common.messaging.bridge import Bridge, run_forever


class Command(BaseCommand):
    help = "Serve this service's NATS request handlers in its queue group; stops gracefully on SIGTERM."
    # No system checks at start: `migrate`, which runs before any process of a deployment starts, has run them on
    # the same settings, and they import what only the HTTP process serves (the URLconf, the admin, DRF): about
    # 240 modules and 9 MiB resident in a process that never routes a URL.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--workers", type=int, default=None, help="handler threads (default NATS_BRIDGE_WORKERS)")

    def handle(self, *args: Any, **options: Any) -> None:
        module = import_module(settings.NATS_HANDLERS_MODULE)
        # What the service must find in order before it serves (the auth service: its secrets decrypt); a
        # configuration error stops it here with its message, rather than failing requests later.
        for check in getattr(module, "STARTUP", ()):
            try:
                check()
            except ImproperlyConfigured as exc:
                raise CommandError(f"{settings.SERVICE_NAME} cannot start: {exc}") from None
        bridge = Bridge(
            service=settings.SERVICE_NAME,
            nats_url=settings.NATS_URL,
            handlers=getattr(module, "HANDLERS", {}),
            queue=settings.SERVICE_NAME,
            workers=options["workers"] or settings.NATS_BRIDGE_WORKERS,
            background=getattr(module, "BACKGROUND", ()),
        )
        run_forever(bridge)
