"""user.find.all, user.find.one and main.seed through a real bridge, as the gateway calls them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from django.db import DatabaseError, connection

from common.contracts import subjects
from common.contracts.errors import ServiceError
from common.contracts.users import TIMESTAMP_PATTERN, UserPage, UserPublic
from common.messaging.bridge import dispatch
from common.messaging.client import NatsClient
from common.messaging.codec import dumps, loads
from devstack.testing.plugin import bridge_in_thread
from main_api.handlers import HANDLERS
from main_api.users.models import User
from main_api.users.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def main(gateway_client: NatsClient) -> Iterator[NatsClient]:
    # Request handlers only: these tests are about reads, not the event consumer. As deployed: the gateway's
    # identity asks, the main bridge's answers.
    with bridge_in_thread(service="main", background=[], identity="main-bridge"):
        yield gateway_client


def _error(client: NatsClient, subject: str, data: Any) -> dict[str, Any]:
    with pytest.raises(ServiceError) as info:
        client.request(subject, data)
    return info.value.to_body()


def test_list_defaults_to_the_ten_oldest_users_in_the_public_shape(main: NatsClient) -> None:
    users = UserFactory.create_batch(12)
    first = users[0]
    User.objects.filter(pk=first.pk).update(
        name="Ada",
        username="ada",
        email="ada@example.com",
        roles=["user", "admin"],
        is_verified=False,
        created_at=datetime(2025, 12, 31, 23, 59, 59, 123456, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, tzinfo=UTC),
    )

    reply = main.request(subjects.USER_FIND_ALL, {})

    assert (reply["limit"], reply["offset"], reply["total"]) == (10, 0, 12)
    assert [r["id"] for r in reply["results"]] == [str(u.id) for u in users[:10]]
    assert reply["results"][0] == {
        "id": str(first.id),
        "name": "Ada",
        "username": "ada",
        "email": "ada@example.com",
        "roles": ["user", "admin"],
        "verifiedAccount": False,
        "active": True,
        "createdAt": "2025-12-31T23:59:59.123Z",
        "updatedAt": "2026-01-02T00:00:00.000Z",
    }


def test_list_pages_with_limit_and_offset_in_a_stable_order(main: NatsClient) -> None:
    same_time = datetime(2026, 5, 1, tzinfo=UTC)
    users = sorted(UserFactory.create_batch(7, created_at=same_time), key=lambda u: u.id)

    page = main.request(subjects.USER_FIND_ALL, {"limit": 3, "offset": 3})
    past_the_end = main.request(subjects.USER_FIND_ALL, {"limit": 100, "offset": 7})

    assert [r["id"] for r in page["results"]] == [str(u.id) for u in users[3:6]]
    assert (page["limit"], page["offset"], page["total"]) == (3, 3, 7)
    assert past_the_end == {"limit": 100, "offset": 7, "total": 7, "results": []}


def test_list_filters_by_active_and_verified_and_never_shows_deleted_users(main: NatsClient) -> None:
    active_verified = UserFactory(is_active=True, is_verified=True)
    inactive = UserFactory(is_active=False, is_verified=True)
    unverified = UserFactory(is_active=True, is_verified=False)
    UserFactory(is_deleted=True)

    def ids(data: dict[str, Any]) -> list[str]:
        return [r["id"] for r in main.request(subjects.USER_FIND_ALL, data)["results"]]

    assert ids({}) == [str(u.id) for u in (active_verified, inactive, unverified)]
    assert ids({"active": False}) == [str(inactive.id)]
    assert ids({"verified": False}) == [str(unverified.id)]
    assert ids({"active": True, "verified": True}) == [str(active_verified.id)]
    assert main.request(subjects.USER_FIND_ALL, {"active": False})["total"] == 1


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"limit": 0}, {"limit": ["limit must be an integer >= 1"]}),
        ({"limit": 101}, {"limit": ["limit must be an integer <= 100"]}),
        ({"limit": "10"}, {"limit": ["limit must be an integer"]}),
        ({"limit": True}, {"limit": ["limit must be an integer"]}),
        ({"limit": 2.5}, {"limit": ["limit must be an integer"]}),
        ({"offset": -1}, {"offset": ["offset must be an integer >= 0"]}),
        ({"offset": 2**31}, {"offset": ["offset must be an integer <= 2147483647"]}),
        ({"active": "false"}, {"active": ["active must be a boolean or null"]}),
        ({"verified": 1}, {"verified": ["verified must be a boolean or null"]}),
        ({"limit": 5, "sort": "name"}, {"sort": ["property sort should not exist"]}),
    ],
)
def test_list_rejects_bad_queries_with_the_fields_at_fault(
    main: NatsClient, data: dict[str, Any], fields: dict[str, list[str]]
) -> None:
    UserFactory()

    body = _error(main, subjects.USER_FIND_ALL, data)

    assert body == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": [m for msgs in fields.values() for m in msgs],
        "code": "validation_failed",
        "fields": fields,
    }


def test_list_rejects_data_that_is_not_an_object(main: NatsClient) -> None:
    assert _error(main, subjects.USER_FIND_ALL, ["limit", 5])["statusCode"] == 400


def test_one_returns_the_user(main: NatsClient) -> None:
    user = UserFactory(name="Linus", roles=["guest"])

    reply = main.request(subjects.USER_FIND_ONE, {"id": str(user.id)})

    assert (reply["id"], reply["name"], reply["roles"], reply["active"]) == (str(user.id), "Linus", ["guest"], True)


@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid", "deleted"])
def test_one_answers_404_for_an_unknown_malformed_or_deleted_id(main: NatsClient, user_id: str) -> None:
    if user_id == "deleted":
        user_id = str(UserFactory(is_deleted=True).id)

    body = _error(main, subjects.USER_FIND_ONE, {"id": user_id})

    assert body == {"statusCode": 404, "error": "Not Found", "message": "User not found", "code": "not_found"}


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({}, {"id": ["id is required"]}),
        ({"id": 7}, {"id": ["id must be a string"]}),
        ({"id": "x", "extra": 1}, {"extra": ["property extra should not exist"]}),
    ],
)
def test_one_rejects_a_malformed_request(main: NatsClient, data: dict[str, Any], fields: dict[str, list[str]]) -> None:
    body = _error(main, subjects.USER_FIND_ONE, data)
    assert (body["statusCode"], body["fields"]) == (400, fields)


def test_seed_is_a_no_op_success(main: NatsClient) -> None:
    assert main.request(subjects.MAIN_SEED, None) == {"ok": True}
    assert User.objects.count() == 0


def test_reads_run_as_statements_prepared_once_per_connection() -> None:
    user = UserFactory()
    for _ in range(3):
        assert loads(dispatch(HANDLERS[subjects.USER_FIND_ALL], subjects.USER_FIND_ALL, dumps({"data": {}}), None))[
            "ok"
        ]
        one = dumps({"data": {"id": str(user.id)}})
        assert loads(dispatch(HANDLERS[subjects.USER_FIND_ONE], subjects.USER_FIND_ONE, one, None))["ok"]
    # Prepared on this connection by PostgreSQL, so not parsed and planned again on every read.
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = [row[0] for row in cursor.fetchall()]
    assert len(prepared) == 2
    assert any("json_agg" in text for text in prepared)
    assert any("WHERE u.id = $1" in text for text in prepared)


@pytest.mark.parametrize("subject", [subjects.USER_FIND_ALL, subjects.USER_FIND_ONE])
def test_a_dead_database_connection_answers_503_then_the_next_request_reconnects(subject: str) -> None:
    user = UserFactory()
    handler = HANDLERS[subject]
    raw = dumps({"data": {"id": str(user.id)} if subject == subjects.USER_FIND_ONE else {}})
    # The server ends this thread's session, as a database restart or failover would.
    with connection.cursor() as cursor, contextlib.suppress(DatabaseError):
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    failed = loads(dispatch(handler, subject, raw, None))
    recovered = loads(dispatch(handler, subject, raw, None))

    assert failed == {
        "ok": False,
        "error": {
            "statusCode": 503,
            "error": "Service Unavailable",
            "message": "Database unavailable",
            "code": "service_unavailable",
        },
    }
    assert recovered["ok"] is True
    found = recovered["data"]["results"][0] if subject == subjects.USER_FIND_ALL else recovered["data"]
    assert found["id"] == str(user.id)


def test_replies_are_the_contracts_user_shape(main: NatsClient) -> None:
    """The SQL builds the public user (common/contracts/users.py): its replies decode as the contract's types,
    which refuse any field more, any field less and any wrong type."""
    users = [UserFactory(roles=["user", "admin"]), UserFactory(is_active=False, is_verified=False)]

    page = msgspec.convert(main.request(subjects.USER_FIND_ALL, {}), UserPage)
    one = msgspec.convert(main.request(subjects.USER_FIND_ONE, {"id": str(users[0].id)}), UserPublic)

    assert [user.id for user in page.results] == [user.id for user in users]
    assert one == page.results[0]
    assert (one.roles, page.results[1].active, page.results[1].verified_account) == (["user", "admin"], False, False)
    assert TIMESTAMP_PATTERN.fullmatch(one.created_at) and one.created_at.endswith("Z")
