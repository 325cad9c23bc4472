"""`provision_streams`: create or update the identity-events stream and this project's durable consumer."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from nats.aio.client import Client as NatsConnection
from nats.errors import Error as NatsError

from common.contracts.errors import ServiceError
from common.messaging.client import get_client
from common.messaging.jetstream import Provisioned, user_events_provision


class Command(BaseCommand):
    help = "Create or update the JetStream stream of identity events (and this project's consumer) from settings."

    def handle(self, *args: Any, **options: Any) -> None:
        client = get_client()
        try:
            done = client.run(_provision(client.connection()), timeout=30)
        except (ServiceError, NatsError) as exc:
            raise CommandError(f"could not provision JetStream: {exc}") from exc
        for name, action in done.items():
            self.stdout.write(f"{name}: {action}")


async def _provision(nc: NatsConnection) -> dict[str, Provisioned]:
    return await user_events_provision(nc.jetstream())
