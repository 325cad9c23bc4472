"""A route declared only here (as docs/EXTENDING.md declares one) is served, documented, validated and forwarded.

Nothing in the gateway's own files names these routes: they are registered for the test's duration, and a real
bridge on the test NATS answers their subjects with handlers defined below.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework import serializers

from common.contracts.envelope import Request
from common.contracts.errors import NotFound
from common.contracts.rpc import Contract, Message
from common.messaging.bridge import handlers
from gateway.api import fastlane
from gateway.api.csrf import new_csrf_token
from gateway.api.routing import BEARER, USER_ID, Route, registered
from gateway.api.serializers import StrictSerializer
from gateway.api.tests.tokens import TEST_SUBJECT, Signer


class Greet(Message):
    id: uuid.UUID
    name: str
    times: int = 1


class Greeting(Message):
    greeting: str


class GreetingsQuery(Message):
    limit: int


GREET = Contract("test.extending.greet", Greet, Greeting, errors=(404,))
GREETINGS = Contract("test.extending.greetings", GreetingsQuery, list[Greeting])


class GreetingSerializer(StrictSerializer):
    name = serializers.CharField(max_length=20)
    times = serializers.IntegerField(min_value=1, max_value=3, default=1)


class GreetingsQuerySerializer(StrictSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=5, default=2)


ROUTES = (
    Route(
        "POST",
        f"api/extending/users/{USER_ID}/greetings",
        "Greet a user",
        GREET,
        access=BEARER,
        args=(USER_ID,),
        body=GreetingSerializer,
        status=201,
        errors=(400, 401, 403, 404),
        tags=("extending",),
    ),
    Route(
        "GET",
        "api/extending/greetings",
        "Recent greetings",
        GREETINGS,
        access=BEARER,
        query=GreetingsQuerySerializer,
        errors=(400, 401),
        lean=True,
        tags=("extending",),
    ),
)


@pytest.fixture
def handled(service_bridge: Callable[..., Any]) -> Iterator[list[tuple[Request, Any]]]:
    """The routes served, their subjects answered by a bridge; yields what the handlers received, decoded."""
    received: list[tuple[Request, Any]] = []

    def greet(request: Request, data: Greet) -> Greeting:
        received.append((request, data))
        if data.id == uuid.UUID(int=0):
            raise NotFound("User not found")
        return Greeting(greeting=" ".join([f"Hello {data.name}!"] * data.times))

    def greetings(request: Request, data: GreetingsQuery) -> list[Greeting]:
        received.append((request, data))
        return [Greeting(greeting="Hello!")] * data.limit

    served = handlers({GREET: greet, GREETINGS: greetings})
    with registered(*ROUTES), service_bridge(service="extending", handlers=served):
        yield received


@pytest.fixture
def caller(trusted: Signer, live_session: Callable[[], str]) -> tuple[Client, str, dict[str, str]]:
    """A client with a live bearer token and the CSRF cookie; the caller's id; the headers to send."""
    # The session belongs to the token's subject (the gateway refuses a live session of another user).
    user_id = TEST_SUBJECT
    client = Client()
    sid = live_session()
    csrf = new_csrf_token(sid)
    client.cookies["__Host-csrf"] = csrf
    token = trusted.token(sid=sid, sub=user_id, roles=["user"])
    return client, user_id, {"Authorization": f"Bearer {token}", "x-csrf-token": csrf}


def test_a_route_declared_elsewhere_reaches_its_handler_decoded_and_validated(
    handled: list[tuple[Request, Any]], caller: tuple[Client, str, dict[str, str]]
) -> None:
    client, user_id, headers = caller
    target = uuid.uuid4()

    response = client.post(
        f"/api/extending/users/{str(target).upper()}/greetings",
        {"name": "Ada", "times": "2"},
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code == 201, response.content
    assert response.json() == {"greeting": "Hello Ada! Hello Ada!"}
    assert response["Cache-Control"] == "no-store"
    ((request, data),) = handled
    assert request.subject == GREET.subject
    # The path argument checked and normalised, the body's number read as one, sent as the contract says,
    # decoded by the bridge: the handler gets typed data.
    assert request.data == {"id": str(target), "name": "Ada", "times": 2}
    assert data == Greet(id=target, name="Ada", times=2)
    assert request.agent is not None and request.agent.id == user_id


def test_a_service_error_keeps_its_status(
    handled: list[tuple[Request, Any]], caller: tuple[Client, str, dict[str, str]]
) -> None:
    client, _, headers = caller

    response = client.post(
        f"/api/extending/users/{uuid.UUID(int=0)}/greetings",
        {"name": "Ada"},
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code == 404
    assert response.json()["message"] == "User not found"
    assert handled[0][1].times == 1  # the serializer's default, filled in by the gateway


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("users/{id}/greetings", {"name": 5, "extra": 1}, {"name", "extra"}),
        ("users/{id}/greetings", {"name": "Ada", "times": 9}, {"times"}),
        ("users/{id}/greetings", {}, {"name"}),
        ("users/not-a-uuid/greetings", {"name": "Ada"}, {"id"}),
    ],
)
def test_a_bad_request_is_the_400_envelope_naming_the_field(
    handled: list[tuple[Request, Any]],
    caller: tuple[Client, str, dict[str, str]],
    path: str,
    body: dict[str, Any],
    fields: set[str],
) -> None:
    client, _, headers = caller

    response = client.post(
        "/api/extending/" + path.format(id=uuid.uuid4()), body, content_type="application/json", headers=headers
    )

    assert response.status_code == 400
    envelope = response.json()
    assert envelope["statusCode"] == 400 and envelope["code"] == "validation_failed"
    assert set(envelope["fields"]) == fields
    assert handled == []


def test_the_declared_access_is_enforced(
    handled: list[tuple[Request, Any]], caller: tuple[Client, str, dict[str, str]]
) -> None:
    client, _, headers = caller
    path = f"/api/extending/users/{uuid.uuid4()}/greetings"

    anonymous = Client().post(path, {"name": "Ada"}, content_type="application/json")
    without_csrf = client.post(
        path, {"name": "Ada"}, content_type="application/json", headers={"Authorization": headers["Authorization"]}
    )

    assert anonymous.status_code == 401
    assert without_csrf.status_code == 403 and without_csrf.json()["code"] == "csrf_failed"
    assert client.put(path, {}, content_type="application/json", headers=headers).status_code == 405
    assert handled == []


def test_a_lean_route_declared_elsewhere_is_served_on_the_lean_path(
    handled: list[tuple[Request, Any]], caller: tuple[Client, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, headers = caller
    served: list[str] = []
    respond = fastlane.LeanRoute.respond

    def counting(route: fastlane.LeanRoute, request: Any, kwargs: dict[str, Any]) -> Any:
        served.append(request.path)
        return respond(route, request, kwargs)

    monkeypatch.setattr(fastlane.LeanRoute, "respond", counting)

    response = client.get("/api/extending/greetings?limit=3", headers=headers)
    refused = client.get("/api/extending/greetings?limit=9", headers=headers)

    assert response.status_code == 200
    assert response.json() == [{"greeting": "Hello!"}] * 3
    assert refused.status_code == 400 and set(refused.json()["fields"]) == {"limit"}
    assert served == ["/api/extending/greetings"] * 2
    assert [data for _, data in handled] == [GreetingsQuery(limit=3)]


def test_the_schema_lists_the_route_while_it_is_registered(handled: list[tuple[Request, Any]]) -> None:
    document = Client().get("/api/schema/", headers={"Accept": "application/json"}).json()

    operation = document["paths"]["/api/extending/users/{user_id}/greetings"]["post"]
    assert operation["summary"] == "Greet a user"
    assert operation["security"] == [{"bearerAuth": [], "csrfHeader": []}]
    assert set(operation["responses"]) == {"201", "400", "401", "403", "404", "503", "504"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert document["components"]["schemas"][body]["additionalProperties"] is False
    assert document["components"]["schemas"][body]["required"] == ["name"]
    assert "get" in document["paths"]["/api/extending/greetings"]


def test_routes_are_served_exactly_while_registered() -> None:
    assert Client().get("/api/extending/greetings").status_code == 404

    with registered(*ROUTES):
        assert Client().get("/api/extending/greetings").status_code == 401

    assert Client().get("/api/extending/greetings").status_code == 404
    document = Client().get("/api/schema/", headers={"Accept": "application/json"}).json()
    assert not [path for path in document["paths"] if path.startswith("/api/extending/")]


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (Route("GET", "api/user", "Again", GREETINGS, access=BEARER), "declared twice"),
        (Route("GET", f"api/extending/{USER_ID}", "No args", GREETINGS), "path arguments"),
        (Route("GET", "api/extending/nothing", "Nowhere"), "needs a subject"),
        (Route("GET", "api/extending/body", "Body", GREET, body=GreetingSerializer), "takes no body"),
        (Route("POST", "api/extending/lean", "Lean", GREET, lean=True), "can be lean"),
        (Route("PUT", "api/user", "Same access", GREET, access=BEARER), ""),
        (Route("PUT", "api/user", "Other access", GREET), "must share one access"),
        (Route("GET", "api/extending/throttled", "Throttled", GREET, access=BEARER, throttle="x"), "IdentityThrottle"),
    ],
)
def test_a_route_the_gateway_cannot_serve_is_refused(route: Route, problem: str) -> None:
    if not problem:
        with registered(route):  # another method on a path, with the path's access, is fine
            return
    with pytest.raises(ImproperlyConfigured, match=problem), registered(route):
        pass  # pragma: no cover - registering raises
