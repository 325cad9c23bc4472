"""NATS subjects main_api answers (reads of the users read model), and its background JetStream consumer."""

from __future__ import annotations

import uuid
from typing import Any

from common.contracts import subjects
from common.contracts.envelope import Request
from common.contracts.errors import NotFound, ValidationFailed
from common.inbox.consumer import JetStreamConsumer
from common.messaging.bridge import BackgroundTask, Handler
from common.messaging.codec import RawJSON
from common.messaging.jetstream import user_events_consumer, user_events_provision
from main_api.users.selectors import user_get, user_list
from main_api.users.services import user_apply_event

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def handle_user_find_all(request: Request) -> dict[str, Any]:
    data = _fields_of(request.data, allowed=("limit", "offset", "active", "verified"))
    errors: dict[str, list[str]] = {}
    limit = _integer(data, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors)
    offset = _integer(data, "offset", 0, 0, None, errors)
    active = _boolean(data, "active", errors)
    verified = _boolean(data, "verified", errors)
    _raise_if(errors)
    total, results = user_list(limit=limit, offset=offset, active=active, verified=verified)
    return {"limit": limit, "offset": offset, "total": total, "results": RawJSON(results)}


def handle_user_find_one(request: Request) -> RawJSON:
    data = _fields_of(request.data, allowed=("id",))
    raw = data.get("id")
    if not isinstance(raw, str) or not raw:
        _raise_if({"id": ["id must be a string"]})
    try:
        user_id = uuid.UUID(str(raw))
    except ValueError:
        # No user can have an id that is not a UUID: the answer is the same as for an unknown one.
        raise NotFound("User not found") from None
    user = user_get(user_id=user_id)
    if user is None:
        raise NotFound("User not found")
    return RawJSON(user)


def handle_main_seed(request: Request) -> dict[str, bool]:
    # main_api holds no seed data of its own: seeded users arrive as the auth service's events.
    return {"ok": True}


def _fields_of(data: Any, *, allowed: tuple[str, ...]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationFailed(["request data must be an object"])
    unknown = {str(key): [f"property {key} should not exist"] for key in data if key not in allowed}
    _raise_if(unknown)
    return data


def _integer(
    data: dict[str, Any], name: str, default: int, low: int, high: int | None, errors: dict[str, list[str]]
) -> int:
    value = data.get(name)
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit() and value.isascii():
        try:
            number = int(value)
        except ValueError:  # longer than Python converts; certainly out of range
            number = None
    if number is None or number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"greater than or equal to {low}"
        errors[name] = [f"{name} must be an integer {bounds}"]
        return default
    return number


def _boolean(data: dict[str, Any], name: str, errors: dict[str, list[str]]) -> bool | None:
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    errors[name] = [f"{name} must be a boolean (true or false)"]
    return None


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationFailed([msg for msgs in errors.values() for msg in msgs], fields=errors)


HANDLERS: dict[str, Handler] = {
    subjects.USER_FIND_ALL: handle_user_find_all,
    subjects.USER_FIND_ONE: handle_user_find_one,
    subjects.MAIN_SEED: handle_main_seed,
}

USERS_CONSUMER = JetStreamConsumer(
    name="users", handler=user_apply_event, spec=user_events_consumer, provision=user_events_provision
)
BACKGROUND: list[BackgroundTask] = [USERS_CONSUMER]
