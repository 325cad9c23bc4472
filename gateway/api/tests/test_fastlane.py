"""The lean path of the hot read routes answers exactly as the DRF path: status, body, headers and logs.

Every request is sent twice, through the gateway's WSGI handler as configured (lean path on) and through a
handler built with LEAN_ROUTES off, against the running stack; the two answers must be identical, and the
lean path must have served exactly the requests it is meant to.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory, override_settings

from common.contracts.errors import ServiceUnavailable
from devstack.testing.stack import RunningStack
from gateway.api import fastlane, jwks
from gateway.api.jwks import JwksCache
from gateway.api.tests.e2e import Account, Api, eventually, gateway_pointed_at, logged_in, registered
from gateway.api.tests.tokens import (
    UNREACHABLE_REDIS,
    Signer,
    access_claims,
    hs256_token,
    public_pem_from_jwk,
    unsigned_token,
    with_payload,
)

REQUEST_ID = "fastlane-equivalence-0001"
LOGGERS = ("common.http", "gateway.api.authentication", "django.request", "gateway.api.jwks")
LOGGED_FIELDS = ("method", "path", "status", "user_id", "reason", "error")


@dataclass(frozen=True)
class Answer:
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    logs: tuple[tuple[Any, ...], ...]


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs() -> Iterator[Capture]:
    capture = Capture()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger in loggers:
            logger.removeHandler(capture)


def call(app: Any, path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    environ = RequestFactory().generic(method, path, headers={"X-Request-Id": REQUEST_ID, **(headers or {})}).environ
    started: list[Any] = []
    with captured_logs() as capture:
        chunks = app(
            environ, lambda status, response_headers, exc_info=None: started.extend([status, response_headers])
        )
        body = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
    logs = tuple(
        (record.name, record.levelname, record.getMessage(), *(getattr(record, name, None) for name in LOGGED_FIELDS))
        for record in capture.records
    )
    return Answer(status=started[0], headers=tuple(sorted(started[1])), body=body, logs=logs)


@dataclass
class Paths:
    """Both WSGI handlers, and how many requests the lean path served."""

    lean: Any
    drf: WSGIHandler
    served: list[str]

    def same(
        self,
        path: str,
        *,
        lean: bool,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        page: bool = False,
    ) -> Answer:
        """The answer of both paths (asserted identical); `lean`: whether the lean path must have served it.

        `page`: a browsable API page (DRF on both sides), which carries a fresh token each time: status only."""
        before = len(self.served)
        lean_answer = call(self.lean, path, method=method, headers=headers)
        assert len(self.served) - before == (1 if lean else 0), f"lean path use for {method} {path}"
        drf_answer = call(self.drf, path, method=method, headers=headers)
        assert len(self.served) - before == (1 if lean else 0), f"DRF path for {method} {path} went lean"
        assert lean_answer.status == drf_answer.status, path
        if page:
            return lean_answer
        assert lean_answer.body == drf_answer.body, path
        assert lean_answer.headers == drf_answer.headers, path
        assert lean_answer.logs == drf_answer.logs, path
        return lean_answer


def lean_responses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the lean routes answer from now on (in this test), in order."""
    served: list[str] = []
    respond = fastlane.LeanRoute.respond

    def counting(route: fastlane.LeanRoute, request: Any, kwargs: dict[str, Any]) -> Any:
        served.append(request.path)
        return respond(route, request, kwargs)

    monkeypatch.setattr(fastlane.LeanRoute, "respond", counting)
    return served


@pytest.fixture(params=["front", "middleware"])
def paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """The lean path as served (gateway.wsgi: the WSGI front), and as the innermost middleware alone (the test
    client's way, and Django's own handler whenever the front steps aside)."""
    served = lean_responses(monkeypatch)
    replay = fastlane.LeanFront._replay

    def counting_replay(front: fastlane.LeanFront, environ: dict[str, Any], document: Any, start_response: Any) -> Any:
        answer = replay(front, environ, document, start_response)
        if answer is not None:
            served.append(environ["PATH_INFO"])
        return answer

    monkeypatch.setattr(fastlane.LeanFront, "_replay", counting_replay)
    lean: Any = fastlane.LeanFront(WSGIHandler()) if request.param == "front" else WSGIHandler()
    if request.param == "front":
        assert lean.enabled
    with override_settings(LEAN_ROUTES=False):
        drf = WSGIHandler()
    return Paths(lean=lean, drf=drf, served=served)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status_of(answer: Answer) -> int:
    return int(answer.status.split()[0])


# --- against the whole stack, with tokens the auth service issued ---------------------------------------------------

LIST_QUERIES = [
    "limit=1",
    "limit=2&offset=1",
    "limit=100&offset=0",
    "limit=1&active=true",
    "limit=1&active=false&verified=1",
    "limit=1&verified=no&active=ON",
    "limit=1&limit=2",
    "limit=007",
    "offset=2147483647&limit=1",
    # refused (400) or read by the serializer itself
    "limit=0",
    "limit=101",
    "limit=abc",
    "limit=",
    "limit=-1",
    "limit=+5",
    "limit=%205",
    "limit=1.0",
    "limit=1_0",
    "limit=99999999999999999999999999999",
    "limit=" + "9" * 2000,
    "offset=-1",
    "offset=2147483648",
    "active=maybe",
    "active=",
    "verified=null",
    "unknown=1",
    "limit=1&unknown=1&other=",
    "limit=%00",
    "limit=%C3%A9",
]


def test_user_routes_answer_alike(services: RunningStack, paths: Paths, member: tuple[Api, Account]) -> None:
    api, _ = member
    auth = bearer(str(api.access_token))
    own = paths.same(f"/api/user/{api.user_id}", lean=True, headers=auth)
    assert status_of(own) == 200 and api.user_id.encode() in own.body
    assert status_of(paths.same(f"/api/user/{uuid.uuid4()}", lean=True, headers=auth)) == 404
    assert status_of(paths.same(f"/api/user/{api.user_id.upper()}", lean=True, headers=auth)) == 200
    for malformed in ("not-a-uuid", "deactivate", "%20", "123"):
        assert status_of(paths.same(f"/api/user/{malformed}", lean=True, headers=auth)) == 400
    for query in LIST_QUERIES:
        paths.same(f"/api/user?{query}", lean=True, headers=auth)
    assert status_of(paths.same("/api/user?limit=0", lean=True, headers=auth)) == 400
    assert status_of(paths.same("/api/user?limit=1", lean=True, headers=auth)) == 200
    # The default page may still be growing with other tests' users (events reach main_api asynchronously).
    eventually(lambda: paths.same("/api/user", lean=True, headers=auth))
    # Other Accept values, format overrides, other methods and other paths: DRF (or Django) on both sides.
    for accept in ("application/json", "*/*"):
        paths.same("/api/user?limit=1", lean=True, headers={**auth, "Accept": accept})
    for accept in ("application/xml", "application/json; indent=4", "application/json, text/plain", ""):
        paths.same("/api/user?limit=1", lean=False, headers={**auth, "Accept": accept})
    # DRF negotiates ?format=, then the strict query refuses the unknown parameter.
    assert status_of(paths.same("/api/user?limit=1&format=json", lean=False, headers=auth)) == 400
    paths.same("/.well-known/jwks.json?format=json", lean=False)
    for method in ("HEAD", "OPTIONS"):
        paths.same("/api/user?limit=1", lean=False, method=method, headers=auth)
    for path in ("/api/user/", f"/api/user/{api.user_id}/", "/api/users", "/api/user/deactivate/x", "/api/userx"):
        paths.same(path, lean=False, headers=auth)
    # A host not in ALLOWED_HOSTS: Django's 400 on both sides.
    assert status_of(paths.same("/api/user?limit=1", lean=False, headers={**auth, "Host": "evil.example"})) == 400
    with override_settings(DISALLOWED_USER_AGENTS=[re.compile("badbot")]):
        refused = paths.same("/api/user?limit=1", lean=False, headers={**auth, "User-Agent": "badbot/1"})
    assert status_of(refused) == 403


def test_authorization_variants_answer_alike(services: RunningStack, paths: Paths, member: tuple[Api, Account]) -> None:
    api, _ = member
    token = str(api.access_token)
    for headers in (
        {"Authorization": f"bearer {token}"},
        {"Authorization": f"BEARER  {token}"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.token"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": f"Bearer {token} extra"},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": "Bearer " + "a" * 9000},
        {"Authorization": "Bearer tök"},
    ):
        paths.same("/api/user?limit=1", lean=True, headers=headers)
    # No bearer header: anonymous or another scheme (401 from DRF on both sides).
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": ""}):
        assert status_of(paths.same("/api/user?limit=1", lean=False, headers=headers)) == 401


def test_ended_sessions_are_refused_at_once_on_both(
    services: RunningStack, paths: Paths, member: tuple[Api, Account]
) -> None:
    api, _ = member
    auth = bearer(str(api.access_token))
    assert status_of(paths.same("/api/user?limit=1", lean=True, headers=auth)) == 200
    assert api.post("/api/auth/logout", bearer=False).status_code == 200
    assert status_of(paths.same("/api/user?limit=1", lean=True, headers=auth)) == 401
    assert status_of(paths.same(f"/api/user/{api.user_id}", lean=True, headers=auth)) == 401


def test_denied_access_is_refused_at_once_on_both(services: RunningStack, paths: Paths, sys_admin: Api) -> None:
    target = logged_in(registered(services))
    auth = bearer(str(target.access_token))
    assert status_of(paths.same(f"/api/user/{target.user_id}", lean=True, headers=auth)) == 200
    assert sys_admin.post("/api/auth/deny-access", {"userId": target.user_id}).status_code == 200
    assert status_of(paths.same(f"/api/user/{target.user_id}", lean=True, headers=auth)) == 401


def test_jwks_answers_alike(services: RunningStack, paths: Paths) -> None:
    answer = paths.same("/.well-known/jwks.json", lean=True)
    assert status_of(answer) == 200 and b'"keys"' in answer.body
    paths.same("/.well-known/jwks.json", lean=True, headers={"Authorization": "Bearer stale"})
    paths.same("/.well-known/jwks.json?x=1", lean=True)
    paths.same("/.well-known/jwks.json", lean=False, headers={"Accept": "text/html"}, page=True)
    paths.same("/.well-known/jwks.json", lean=False, method="HEAD")
    paths.same("/.well-known/jwks.json/", lean=False)


def test_jwks_answers_are_replayed_while_the_document_is_current(
    services: RunningStack, paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(paths.lean, fastlane.LeanFront):
        return  # the replay is the front's; the middleware variant is covered above
    replayed: list[str] = []
    replay = fastlane.LeanFront._replay

    def spy(front: fastlane.LeanFront, environ: dict[str, Any], document: Any, start_response: Any) -> Any:
        answer = replay(front, environ, document, start_response)
        replayed.append("hit" if answer is not None else "miss")
        return answer

    cache = JwksCache(fetch=jwks.get_jwks().fetch)  # empty: its first use fetches
    monkeypatch.setattr(jwks, "get_jwks", lambda: cache)
    monkeypatch.setattr(fastlane.LeanFront, "_replay", spy)
    paths.same("/.well-known/jwks.json", lean=True)  # nothing cached yet: no replay looked for, not remembered
    assert replayed == []
    first = paths.same("/.well-known/jwks.json", lean=True)  # worked out in full, remembered
    again = paths.same("/.well-known/jwks.json", lean=True)
    assert replayed == ["miss", "hit"]
    assert again.body == first.body
    # Each replay carries its own request id, and logs its access line with it.
    ids = {dict(answer.headers)["X-Request-Id"] for answer in (first, again)}
    assert ids == {REQUEST_ID}
    other = call(paths.lean, "/.well-known/jwks.json", headers={"X-Request-Id": "bad id with spaces"})
    assert dict(other.headers)["X-Request-Id"] not in (REQUEST_ID, "bad id with spaces")
    # Another Accept is another answer: worked out in full (then replayed on its own).
    paths.same("/.well-known/jwks.json", lean=True, headers={"Accept": "application/json"})
    assert replayed[-1] == "miss"
    # A refetched key set is a new document: the old answer is never replayed for it.
    monkeypatch.setattr(jwks, "get_jwks", lambda: JwksCache(fetch=lambda: {"keys": []}))
    looked = len(replayed)
    fresh = paths.same("/.well-known/jwks.json", lean=True)
    assert "hit" not in replayed[looked:] and status_of(fresh) in (200, 503)


def test_cors_headers_answer_alike(services: RunningStack, paths: Paths, member: tuple[Api, Account]) -> None:
    api, _ = member
    auth = bearer(str(api.access_token))
    allowed, refused = "https://app.example", "https://evil.example"

    def headers(answer: Answer) -> dict[str, str]:
        return {name.lower(): value for name, value in answer.headers}

    with override_settings(CORS_ALLOWED_ORIGINS=[allowed]):
        users = headers(paths.same("/api/user?limit=1", lean=True, headers={**auth, "Origin": allowed}))
        other = headers(paths.same("/api/user?limit=1", lean=True, headers={**auth, "Origin": refused}))
        # The replayed JWKS answer of one origin is never another origin's.
        for origin in (allowed, refused, allowed, refused):
            keys = headers(paths.same("/.well-known/jwks.json", lean=True, headers={"Origin": origin}))
            assert keys.get("access-control-allow-origin") == (allowed if origin == allowed else None)

    assert (users["access-control-allow-origin"], users["access-control-allow-credentials"]) == (allowed, "true")
    assert "origin" in users["vary"].lower()
    assert "access-control-allow-origin" not in other and "access-control-allow-credentials" not in other


def test_jwks_unavailable_answers_alike(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> dict[str, Any]:
        raise ServiceUnavailable("No service is answering auth.jwks.get")

    # A cache of its own for each request, so both paths try (and log) the fetch alike.
    monkeypatch.setattr(jwks, "get_jwks", lambda: JwksCache(fetch=unavailable))
    assert status_of(paths.same("/.well-known/jwks.json", lean=True)) == 503


# --- tokens from a local key the gateway trusts (forgeries, expiry, audience) ---------------------------------------


def test_forged_and_expired_tokens_answer_alike(
    services: RunningStack, paths: Paths, trusted: Signer, live_session: Callable[[], str]
) -> None:
    sid = live_session()
    now = int(time.time())
    claims = access_claims(sid=sid)
    good = trusted.token(sid=sid)
    tokens = {
        "good": good,
        "expired": trusted.token(sid=sid, iat=now - 1000, exp=now - 60),
        "from the future": trusted.token(sid=sid, iat=now + 600),
        "unknown kid": trusted.token(sid=sid, kid="no-such-kid"),
        "alg none": unsigned_token(claims, kid=trusted.kid),
        "hs256 with the public key": hs256_token(claims, secret=public_pem_from_jwk(trusted.jwk()), kid=trusted.kid),
        "wrong audience": trusted.token(sid=sid, aud="another-api"),
        "wrong issuer": trusted.token(sid=sid, iss="someone-else"),
        "not an access token": trusted.token(sid=sid, headers={"typ": "JWT"}),
        "tampered": with_payload(good, roles=["sys_admin"]),
        "no session": trusted.token(sid=uuid.uuid4().hex),
        "another user's session": trusted.token(sid=sid, sub=str(uuid.uuid4())),
        "unknown role": trusted.token(sid=sid, roles=["root"]),
        "guest": trusted.token(sid=sid, roles=["guest"]),
    }
    for name, token in tokens.items():
        answer = paths.same("/api/user?limit=1", lean=True, headers=bearer(token))
        assert (status_of(answer) == 401) == (name not in {"good", "unknown role", "guest"}), name
        paths.same(f"/api/user/{uuid.uuid4()}", lean=True, headers=bearer(token))


def test_session_store_down_answers_alike(paths: Paths, trusted: Signer, live_session: Callable[[], str]) -> None:
    token = trusted.token(sid=live_session())
    with override_settings(CACHES=UNREACHABLE_REDIS):
        answer = paths.same("/api/user?limit=1", lean=True, headers=bearer(token))
    assert status_of(answer) == 503 and b"Session store unavailable" in answer.body


def test_services_down_answers_alike(paths: Paths, trusted: Signer, live_session: Callable[[], str]) -> None:
    # The development NATS of this test run: no bridge listens there (the stack has a NATS of its own).
    token = trusted.token(sid=live_session())
    with gateway_pointed_at(os.environ["NATS_URL"]):
        for path in ("/api/user?limit=1", f"/api/user/{uuid.uuid4()}"):
            assert status_of(paths.same(path, lean=True, headers=bearer(token))) == 503


# --- the query validation both paths share -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", *LIST_QUERIES, "active=True", "verified=F", "limit=100", "limit=1&offset=0"])
def test_plain_query_reading_matches_the_serializer(query: str) -> None:
    from django.http import QueryDict
    from rest_framework.exceptions import ValidationError

    from gateway.api import serializers as s

    params = QueryDict(query).dict()

    def outcome(read: Callable[[], dict[str, Any]]) -> Any:
        try:
            return read()
        except ValidationError as exc:
            return exc.detail

    expected = outcome(lambda: s.validated(s.UserListQuerySerializer, params))
    assert outcome(lambda: s.query_validated(s.UserListQuerySerializer, params)) == expected


def _record_start(started: list[Any], status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    started.extend([status, headers])


@pytest.mark.parametrize(
    "raw_path",
    [
        # Fuzzing found this one: a path outside latin-1 that the front hands on to Django (not a bearer request).
        b"/api/user/\xc2\x98\xf2\xbe\xba\x86O@\xf2\xb9\xbc\x9f\x18",
        "/api/user/\N{GRINNING FACE}".encode(),
        b"/api/user/\xff\xfe",
    ],
)
def test_paths_outside_latin_1_are_handed_on_intact(paths: Paths, raw_path: bytes) -> None:
    answers = []
    for app in (paths.lean, paths.drf):
        environ = RequestFactory().get("/", headers={"Authorization": "57*<o}bI$T?JiKINa'V7F;"}).environ
        environ["PATH_INFO"] = raw_path.decode("iso-8859-1")  # as a WSGI server passes it (PEP 3333)
        started: list[Any] = []
        body = b"".join(app(environ, partial(_record_start, started)))
        answers.append((started[0], body))
    assert answers[0] == answers[1]
    assert int(answers[0][0].split()[0]) in (400, 401, 404), answers[0]
    assert paths.served == []


def test_the_front_steps_aside_when_the_middleware_list_is_not_the_gateways() -> None:
    assert fastlane.LeanFront(WSGIHandler()).enabled
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]):
        assert not fastlane.LeanFront(WSGIHandler()).enabled
    with override_settings(MIDDLEWARE=list(reversed(settings.MIDDLEWARE))):
        assert not fastlane.LeanFront(WSGIHandler()).enabled
