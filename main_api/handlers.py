"""NATS subjects main_api answers (reads of the users read model, common/contracts/main.py), and its background
JetStream consumer."""

from __future__ import annotations

import uuid
from typing import Any

from common.contracts import main as c
from common.contracts.envelope import Request
from common.contracts.errors import NotFound
from common.contracts.rpc import Empty
from common.inbox.consumer import JetStreamConsumer
from common.messaging.bridge import BackgroundTask, Handler, handlers
from common.messaging.codec import RawJSON
from common.messaging.jetstream import user_events_consumer, user_events_provision
from main_api.users.selectors import user_get, user_list
from main_api.users.services import user_apply_event


def handle_user_find_all(request: Request, data: c.UserListQuery) -> dict[str, Any]:
    total, results = user_list(limit=data.limit, offset=data.offset, active=data.active, verified=data.verified)
    return {"limit": data.limit, "offset": data.offset, "total": total, "results": RawJSON(results)}


def handle_user_find_one(request: Request, data: c.UserFind) -> RawJSON:
    try:
        user_id = uuid.UUID(data.id)
    except ValueError:
        # No user can have an id that is not a UUID: the answer is the same as for an unknown one.
        raise NotFound("User not found") from None
    user = user_get(user_id=user_id)
    if user is None:
        raise NotFound("User not found")
    return RawJSON(user)


def handle_main_seed(request: Request, data: Empty) -> dict[str, bool]:
    # main_api holds no seed data of its own: seeded users arrive as the auth service's events.
    return {"ok": True}


HANDLERS: dict[str, Handler] = handlers(
    {
        c.USER_FIND_ALL: handle_user_find_all,
        c.USER_FIND_ONE: handle_user_find_one,
        c.SEED: handle_main_seed,
    }
)

USERS_CONSUMER = JetStreamConsumer(
    name="users", handler=user_apply_event, spec=user_events_consumer, provision=user_events_provision
)
BACKGROUND: list[BackgroundTask] = [USERS_CONSUMER]
