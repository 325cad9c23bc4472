"""`seed`: idempotent and never destructive. main_api seeds no data (its users arrive as events); it reports."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User as StaffUser
from django.core.management.base import BaseCommand
from nats.aio.client import Client as NatsConnection
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from common.contracts.errors import ServiceError
from common.messaging.client import get_client
from common.messaging.jetstream import user_events_consumer, user_events_stream


class Command(BaseCommand):
    help = "Seed main_api: nothing to create (users come from identity events); reports the stream and consumer."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("users: nothing to seed; the read model is filled from the auth service's identity events")
        self.stdout.write(_seed_admin_account())
        client = get_client()
        try:
            lines = client.run(_status(client.connection()), timeout=15)
        except (ServiceError, NatsError) as exc:
            self.stdout.write(f"jetstream: not reachable ({exc}); events will flow once NATS answers")
            return
        for line in lines:
            self.stdout.write(line)


def _seed_admin_account() -> str:
    """main_api's admin has its own staff accounts; development gets one (never changed once it exists)."""
    if not settings.SEED_ADMIN_ACCOUNT:
        return "admin account: not seeded (SEED_ADMIN_ACCOUNT is off)"
    if not settings.SEED_PASSWORD:
        return "admin account: not seeded (no SEED_PASSWORD; use `manage_main.py createsuperuser`)"
    username = settings.SEED_ADMIN_USERNAME
    if StaffUser.objects.filter(username=username).exists():
        return f"admin account {username}: present (left as it is)"
    StaffUser.objects.create_superuser(username=username, email="sys-admin@test.com", password=settings.SEED_PASSWORD)
    return f"admin account {username}: created"


async def _status(nc: NatsConnection) -> list[str]:
    js = nc.jetstream()
    stream = user_events_stream()
    lines: list[str] = []
    try:
        info = await js.stream_info(stream.name)
    except NotFoundError:
        return [f"stream {stream.name}: missing; run `manage_main.py provision_streams`"]
    lines.append(f"stream {stream.name}: present, {info.state.messages} message(s)")
    consumer = user_events_consumer()
    if consumer is not None:
        try:
            cinfo = await js.consumer_info(consumer.stream, consumer.durable)
        except NotFoundError:
            lines.append(f"consumer {consumer.durable}: missing; run `manage_main.py provision_streams`")
        else:
            lines.append(
                f"consumer {consumer.durable}: present, {cinfo.num_pending} pending, {cinfo.num_ack_pending} in flight"
            )
    return lines
