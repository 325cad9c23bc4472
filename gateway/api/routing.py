"""One declaration per public route, and the table of them.

A `Route` says everything the gateway does for one method on one path: who may call it (`Access`, a role),
what it reads (path arguments, query, body: each a validator), where it forwards (a NATS subject, or a small body
function of its own), what it answers (reply type, status, cookies) and how the OpenAPI document describes it.
The DRF views, the URL patterns, `/api/schema/` and the lean path of the hot reads (gateway/api/views.py,
urls.py, fastlane.py) are all derived from the routes in `table`; docs/EXTENDING.md shows how to add one.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.throttling import BaseThrottle

from common.contracts.oauth import SCOPES
from common.contracts.rpc import Contract
from gateway.api import schema
from gateway.api import serializers as s
from gateway.api.authentication import AccessTokenAuthentication
from gateway.api.cookies import RefreshCookieRequired, read_refresh_cookie
from gateway.api.csrf import CsrfProtected
from gateway.api.forwarding import forward
from gateway.api.permissions import IsAuthenticated
from gateway.api.struct_serializers import serializer_of
from gateway.api.throttles import IdentityThrottle

AnyRequest = HttpRequest | Request
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PATH_ARGUMENT = re.compile(r"<(?:\w+:)?(\w+)>")


@dataclass(frozen=True)
class Access:
    """Who may call a route: authentication, the permissions every caller needs, throttles, and how the OpenAPI
    document names the credentials. `csrf`: unsafe methods also need the CSRF header; `refresh_token`: the route
    forwards the refresh cookie's token (as `refreshToken`) and a refused one clears the cookies."""

    description: str  # the OpenAPI description of a route that has none of its own
    authentication: tuple[type[BaseAuthentication], ...] = ()
    permissions: tuple[type[BasePermission], ...] = ()
    throttles: tuple[type[BaseThrottle], ...] = ()
    security: tuple[str, ...] = ()
    csrf: bool = False
    refresh_token: bool = False


# Throttled per route (`Route.throttle`).
PUBLIC = Access(
    "No credentials needed; a stale Authorization header is ignored rather than answered with 401.",
    throttles=(IdentityThrottle,),
)
BEARER = Access(
    "An access token with a live session; unsafe methods also need the CSRF header.",
    authentication=(AccessTokenAuthentication,),
    permissions=(IsAuthenticated, CsrfProtected),
    security=(schema.BEARER,),
    csrf=True,
)
# The refresh cookie is checked first: 401 when missing or broken, before CSRF is looked at.
REFRESH_COOKIE = Access(
    "The signed refresh cookie and the CSRF header.",
    permissions=(RefreshCookieRequired, CsrfProtected),
    security=(schema.REFRESH_COOKIE,),
    csrf=True,
    refresh_token=True,
)


@dataclass(frozen=True)
class PathArg:
    """A `<str:name>` segment of a route's path: checked by `parse` (a 400 naming the field when it is not one),
    forwarded as `key`, documented with `type`, `description` and `pattern`."""

    name: str
    key: str
    parse: Callable[[str], str]
    type: OpenApiTypes = OpenApiTypes.STR
    description: str = ""
    pattern: str | None = None

    def __str__(self) -> str:
        return f"<str:{self.name}>"


USER_ID = PathArg("user_id", "id", s.path_uuid, OpenApiTypes.UUID, "The user's id.")
SESSION_ID = PathArg(
    "sid", "sessionId", s.path_session_id, description="A session id.", pattern=s.SESSION_ID_PATTERN.pattern
)


@dataclass(frozen=True)
class Call:
    """One request to a route, read and validated: what a route's body function is given."""

    request: AnyRequest
    route: Route
    args: dict[str, str]
    query: dict[str, Any]
    body: dict[str, Any]
    data: Any  # what the route forwards: path arguments, query, body (or body under `body_key`), refresh token

    def forward(self, subject: Contract[Any] | str, data: Any = None, *, timeout: float | None = None) -> Any:
        """One NATS request on behalf of this call's caller; the reply data (errors surface as ServiceError)."""
        return forward(self.request, subject, data, timeout=timeout)


Respond = Callable[[Call], Any]
# Turns the error envelope a route would answer into the route's own error shape (the OAuth token endpoint's).
RenderError = Callable[[Response], Response]


def reply_serializer(contract: Contract[Any]) -> type[Serializer] | Serializer | None:
    """What a route forwarding to `contract` answers: its reply Struct (or list of them) as a serializer."""
    reply = contract.reply
    if isinstance(reply, type) and issubclass(reply, msgspec.Struct):
        return serializer_of(reply)
    if typing.get_origin(reply) is list:
        (item,) = typing.get_args(reply)
        if isinstance(item, type) and issubclass(item, msgspec.Struct):
            return serializer_of(item)(many=True)
    return None


def forward_call(call: Call) -> Any:
    """The body of most routes: forward the call's data to the route's subject and return the reply."""
    assert call.route.subject is not None  # checked when the route is registered
    return call.forward(call.route.subject, call.data)


@dataclass(frozen=True)
class Route:
    """One method on one path of the public API. Only `method`, `path`, `summary` and a `subject` (or `respond`)
    are needed; the rest has the defaults of a public JSON route answering 200."""

    method: str
    path: str  # Django's path syntax, without the leading slash; `<str:name>` for each of `args`
    summary: str
    subject: Contract[Any] | None = None  # the NATS contract it forwards to (common/contracts)
    respond: Respond = forward_call  # a body of its own: given the Call, returns the reply data (or a Response)
    access: Access = PUBLIC
    role: type[BasePermission] | None = None  # checked after the access's own permissions
    # A scope of common.contracts.oauth.SCOPES: service accounts' tokens holding it pass the route's permissions
    # (client tokens are refused on every route that names none).
    scope: str | None = None
    args: tuple[PathArg, ...] = ()
    query: type[Serializer] | None = None
    body: type[Serializer] | None = None  # None: an unsafe method still refuses a body with properties
    body_key: str | None = None  # forward the body under this key instead of merging its fields
    parsers: tuple[type[BaseParser], ...] | None = None  # None: the settings' (JSON)
    render_error: RenderError | None = None  # None: the error envelope
    error_reply: type[Serializer] | None = None  # what `render_error` answers, for the OpenAPI document
    reply: type[Serializer] | Serializer | None = None  # None: the subject's reply type, or an empty body
    status: int = 200
    errors: tuple[int, ...] = ()  # documented error statuses; 503 and 504 are added when `upstream`
    upstream: bool = True
    sets_tokens: bool = False  # the reply's tokens: the access token in the body, the refresh token as cookies
    clears_cookies: bool = False
    cache_control: str | None = None  # of a successful answer; every other answer is `no-store`
    throttle: str | None = None  # throttle scope (PUBLIC routes), per IP and per `throttle_account` body field
    # The per-account identity: a body field, or a function of the request (Basic credentials, say).
    throttle_account: str | Callable[[Request], str] | None = None
    lean: bool = False  # a hot GET: also answered on the lean path (gateway/api/fastlane.py)
    name: str | None = None  # URL name, shared by the routes of one path
    title: str | None = None  # the browsable API's page title, shared by the routes of one path
    tags: tuple[str, ...] = ()
    description: str = ""
    operation_id: str | None = None

    def __post_init__(self) -> None:
        if self.reply is None and self.subject is not None and not self.sets_tokens:
            object.__setattr__(self, "reply", reply_serializer(self.subject))

    @property
    def documented_errors(self) -> tuple[int, ...]:
        """The route's own error statuses and those its subject may answer."""
        return tuple(sorted({*self.errors, *(self.subject.errors if self.subject else ())}))

    @property
    def permissions(self) -> tuple[type[BasePermission], ...]:
        return (*self.access.permissions, *((self.role,) if self.role else ()))

    @property
    def security(self) -> tuple[str, ...]:
        unsafe = self.method not in SAFE_METHODS
        return (*self.access.security, *((schema.CSRF_HEADER,) if self.access.csrf and unsafe else ()))

    @property
    def reads_body(self) -> bool:
        # A DELETE reads a body only where it declares one (removing a second factor needs password and code).
        return self.method in ("POST", "PUT", "PATCH") or (self.method == "DELETE" and self.body is not None)

    def read(self, request: AnyRequest, kwargs: dict[str, Any]) -> Call:
        """Validate the request's query, then its body, then its path arguments (the first failure is the 400)."""
        query = s.query_validated(self.query, request.GET.dict()) if self.query else {}
        body: dict[str, Any] = {}
        if self.reads_body:
            assert isinstance(request, Request)  # only DRF parses bodies: lean routes are GETs (see `check`)
            body = s.validated(self.body or s.EmptySerializer, request.data)
        args = {arg.key: arg.parse(kwargs[arg.name]) for arg in self.args}
        data: dict[str, Any] = {}
        if self.access.refresh_token:
            data["refreshToken"] = read_refresh_cookie(request)
        data.update(args)
        data.update(query)
        if self.body_key:
            data[self.body_key] = body
        else:
            data.update(body)
        reads = self.access.refresh_token or self.args or self.query or self.body
        return Call(request=request, route=self, args=args, query=query, body=body, data=data if reads else None)

    def check(self) -> None:
        """Refuse a declaration the gateway could not serve as declared."""
        where = f"{self.method} /{self.path}"
        if self.method not in METHODS:
            raise ImproperlyConfigured(f"{where}: method must be one of {', '.join(METHODS)}")
        if set(_PATH_ARGUMENT.findall(self.path)) != {arg.name for arg in self.args}:
            raise ImproperlyConfigured(f"{where}: its path arguments and `args` differ")
        if self.subject is None and self.respond is forward_call:
            raise ImproperlyConfigured(f"{where}: needs a subject to forward to, or a respond function")
        if self.body and not self.reads_body:
            raise ImproperlyConfigured(f"{where}: a {self.method} takes no body")
        if self.scope is not None and (
            self.scope not in SCOPES or AccessTokenAuthentication not in self.access.authentication
        ):
            raise ImproperlyConfigured(f"{where}: a scope must be one of {', '.join(SCOPES)}, on a bearer route")
        if self.throttle and IdentityThrottle not in self.access.throttles:
            raise ImproperlyConfigured(f"{where}: a throttle scope needs an access with IdentityThrottle")
        if self.lean:
            # The lean path reads no body, no cookie, and authenticates with the bearer token only.
            lean_access = self.access.authentication in ((), (AccessTokenAuthentication,))
            if self.method != "GET" or self.throttle or self.access.refresh_token or not lean_access:
                raise ImproperlyConfigured(f"{where}: only a GET without throttle scope or cookies can be lean")


@dataclass
class RouteTable:
    """The routes the gateway serves, in order (the first path that matches a request wins). Whoever derives
    something from them (the URL patterns) subscribes; `version` changes on every change."""

    routes: list[Route] = field(default_factory=list)
    version: int = 0
    _subscribers: list[Callable[[], None]] = field(default_factory=list)

    def register(self, *routes: Route) -> None:
        taken = {(route.method, route.path) for route in self.routes}
        for route in routes:
            route.check()
            if (route.method, route.path) in taken:
                raise ImproperlyConfigured(f"{route.method} /{route.path} is declared twice")
            taken.add((route.method, route.path))
        self._check_paths([*self.routes, *routes])
        self.routes.extend(routes)
        self._changed()

    def unregister(self, *routes: Route) -> None:
        for route in routes:
            self.routes.remove(route)
        self._changed()

    def by_path(self) -> dict[str, tuple[Route, ...]]:
        """The routes of each path, paths in the order they were first declared."""
        paths: dict[str, list[Route]] = {}
        for route in self.routes:
            paths.setdefault(route.path, []).append(route)
        return {path: tuple(routes) for path, routes in paths.items()}

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` now and after every change of the table."""
        self._subscribers.append(callback)
        callback()

    def _changed(self) -> None:
        self.version += 1
        for callback in self._subscribers:
            callback()

    @staticmethod
    def _check_paths(routes: list[Route]) -> None:
        paths: dict[str, list[Route]] = {}
        for route in routes:
            paths.setdefault(route.path, []).append(route)
        for path, shared in paths.items():
            for attribute in ("access", "name", "title"):
                if len({getattr(route, attribute) for route in shared} - {None}) > 1:
                    raise ImproperlyConfigured(f"the routes of /{path} must share one {attribute}")


table = RouteTable()


def register(*routes: Route) -> None:
    """Serve `routes` from now on (URL patterns, schema and lean path follow)."""
    table.register(*routes)


@contextmanager
def registered(*routes: Route) -> Iterator[None]:
    """Serve `routes` for the duration of the block (tests)."""
    table.register(*routes)
    try:
        yield
    finally:
        table.unregister(*routes)
