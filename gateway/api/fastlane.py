"""The lean path of the hot read routes: the DRF views' checks and answers, without DRF's per-request machinery.

The routes declared `lean=True` (gateway/api/routes.py: `GET /api/user`, `GET /api/user/<id>`, `GET
/.well-known/jwks.json`), asked for JSON (with an `Authorization: Bearer` header when the route needs a
token), are answered without DRF's Request wrapper, content negotiation and view instance. Served by
gateway.wsgi, `LeanFront` answers them before Django's handler, calling the same middleware hooks the handler
would; `LeanRoutesMiddleware`, the innermost middleware, answers them inside Django's handler (the test client,
or whenever the front steps aside).

Both paths are built from the same declaration and call the same code: the view's authentication classes
(simplejwt's, gateway/api/authentication.py: token, JWKS, session liveness), the route's permission and throttle classes, `views.serve` (validation, forwarding, the
answer), the DRF exception handler (the error envelope and status mapping), the view's response headers (Allow,
Vary), `default_cache_control` and the first renderer of the settings. Anything else takes the DRF path
unchanged: other methods (HEAD and OPTIONS too), another Accept (the browsable API), `?format=`, no bearer
header (cookies, anonymous), unknown or other paths. LEAN_ROUTES=false turns the lean path off.
gateway/api/tests/test_fastlane.py holds both paths to identical answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve, set_urlconf
from django.utils.cache import patch_vary_headers
from django.utils.log import log_response
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from common.api.middleware import access_log, in_request_context
from common.conf.context import accept_request_id, request_id_var, user_id_var
from common.contracts.envelope import REQUEST_ID_HEADER
from gateway.api import jwks
from gateway.api.authentication import AccessTokenAuthentication, is_bearer
from gateway.api.routing import table
from gateway.api.views import RouteView, default_cache_control, serve
from gateway.middleware import MIDDLEWARE as GATEWAY_MIDDLEWARE

Body = Callable[..., Response]
GetResponse = Callable[[HttpRequest], HttpResponseBase]

# The one media type the lean path renders: the first renderer of the settings must be JSON, without parameters.
JSON = "application/json"
# Accept headers for which DRF's negotiation picks that first renderer. Anything else (text/html for the
# browsable API, parameters, q-values, lists) is negotiated by DRF.
_PLAIN_ACCEPT = frozenset({"*/*", JSON})


@dataclass(frozen=True)
class LeanRoute:
    """What DRF would do for a GET of one lean route, worked out once from its declaration."""

    view: RouteView  # set up for a GET: what the permission and throttle classes are given as the view
    body: Body
    authenticators: tuple[AccessTokenAuthentication, ...]
    permissions: tuple[type[BasePermission], ...]
    throttles: tuple[type[BaseThrottle], ...]
    renderer: BaseRenderer
    headers: Mapping[str, str]
    vary: tuple[str, ...]
    challenge: str | None

    def respond(self, request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponseBase:
        try:
            response = self._run(request, kwargs)
        except Exception as exc:  # noqa: BLE001 - as APIView.dispatch: unhandled ones are re-raised
            response = self._handle_exception(exc, request, kwargs)
        return self._finalize(response, request, kwargs)

    def _run(self, request: HttpRequest, kwargs: dict[str, Any]) -> Response:
        # APIView.initial: authentication, then permissions, then throttles.
        authenticated = self._authenticate(request)
        # As DRF's Request does, the user is set on the Django request too (forward() reads it for the agent).
        request.user = authenticated[0] if authenticated else None  # type: ignore[assignment,attr-defined]
        for permission_class in self.permissions:
            permission = permission_class()
            if not permission.has_permission(request, self.view):  # type: ignore[arg-type]
                if self.authenticators and authenticated is None:
                    raise exceptions.NotAuthenticated()
                raise exceptions.PermissionDenied(
                    detail=getattr(permission, "message", None), code=getattr(permission, "code", None)
                )
        waits: list[float | None] = []
        for throttle_class in self.throttles:
            throttle = throttle_class()
            if not throttle.allow_request(request, self.view):  # type: ignore[arg-type]
                waits.append(throttle.wait())
        if waits:
            raise exceptions.Throttled(max((wait for wait in waits if wait is not None), default=None))
        return self.body(request, kwargs)

    def _authenticate(self, request: HttpRequest) -> tuple[Any, Any] | None:
        # Request._authenticate: the first authenticator that answers (they are stateless, made once).
        for authenticator in self.authenticators:
            authenticated = authenticator.authenticate(request)
            if authenticated is not None:
                return authenticated
        return None

    def _handle_exception(self, exc: Exception, request: HttpRequest, kwargs: dict[str, Any]) -> Response:
        # APIView.handle_exception: 401 with the authenticator's challenge, the envelope from the handler.
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            if self.challenge:
                exc.auth_header = self.challenge  # type: ignore[union-attr]
            else:
                exc.status_code = 403
        handler: Callable[[Exception, dict[str, Any]], Response | None] = api_settings.EXCEPTION_HANDLER  # type: ignore[assignment]
        response = handler(exc, self._context(request, kwargs))
        if response is None:
            raise exc  # Django's handler answers it (500 envelope) and logs it, as for a DRF view
        response.exception = True
        return response

    def _finalize(self, response: Response, request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponseBase:
        # APIView.finalize_response + RouteView's Cache-Control, then the render Django's handler would do.
        response.accepted_renderer = self.renderer
        response.accepted_media_type = self.renderer.media_type
        response.renderer_context = self._context(request, kwargs)  # type: ignore[attr-defined]
        if self.vary:
            patch_vary_headers(response, self.vary)
        for name, value in self.headers.items():
            response[name] = value
        default_cache_control(response)
        response.render()
        return response

    def _context(self, request: HttpRequest, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"view": None, "args": (), "kwargs": kwargs, "request": request}


def lean_route(view_class: type[RouteView]) -> LeanRoute | None:
    """The lean route of a view's GET, or None when it is not declared lean or the settings ask for something
    only DRF does (then DRF serves it)."""
    route = view_class.route_for("GET")
    renderers = list(view_class.renderer_classes)
    if (
        route is None
        or not route.lean
        or not renderers
        or renderers[0].media_type != JSON
        or view_class.content_negotiation_class is not DefaultContentNegotiation
        or view_class.versioning_class is not None
    ):
        return None
    probe = HttpRequest()
    probe.method = "GET"
    view = view_class()
    view.setup(probe)  # as View.as_view does: a view with get() also answers HEAD (the Allow header)
    headers = dict(view.default_response_headers)
    vary = headers.pop("Vary", None)
    authenticators = view.get_authenticators()
    if not all(isinstance(authenticator, AccessTokenAuthentication) for authenticator in authenticators):
        return None  # another authentication class: DRF runs it
    return LeanRoute(
        view=view,
        body=partial(serve, route),
        authenticators=tuple(authenticators),  # type: ignore[arg-type]  # checked above
        permissions=route.permissions,
        throttles=route.access.throttles,
        renderer=renderers[0](),
        headers=headers,
        vary=tuple(part.strip() for part in vary.split(",")) if vary else (),
        challenge=authenticators[0].authenticate_header(None) if authenticators else None,  # type: ignore[arg-type]
    )


def _has_bearer_header(route: LeanRoute, request: HttpRequest) -> bool:
    return is_bearer(route.authenticators[0].get_header(request))


# The lean route of each route view (worked out once: it depends on the declaration and the DRF settings only).
_lean_routes: dict[type[RouteView], LeanRoute | None] = {}
_lean_version = -1


def _lean_route(view_class: type[RouteView]) -> LeanRoute | None:
    global _lean_version
    if _lean_version != table.version:
        _lean_routes.clear()
        _lean_version = table.version
    if view_class not in _lean_routes:
        _lean_routes[view_class] = lean_route(view_class)
    return _lean_routes[view_class]


def lean_match(request: HttpRequest) -> tuple[LeanRoute, dict[str, Any]] | None:
    """The lean route that serves this request and its arguments; None: DRF serves it. Reads, changes nothing."""
    if request.method != "GET" or request.META.get("HTTP_ACCEPT", "*/*") not in _PLAIN_ACCEPT:
        return None
    view_class, kwargs = _resolved(request.path_info, getattr(request, "urlconf", None), table.version)
    route = _lean_route(view_class) if view_class is not None else None
    if route is None or api_settings.URL_FORMAT_OVERRIDE in request.GET:
        return None
    if route.authenticators and not _has_bearer_header(route, request):
        return None
    return route, dict(kwargs)


class LeanRoutesMiddleware:
    """Answers the hot GET routes on the lean path (above); hands every other request on unchanged."""

    def __init__(self, get_response: GetResponse) -> None:
        if not settings.LEAN_ROUTES:
            raise MiddlewareNotUsed()
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        found = lean_match(request)
        if found is None:
            return self.get_response(request)
        route, kwargs = found
        return route.respond(request, kwargs)


JWKS_PATH = "/.well-known/jwks.json"
# What, besides the document, can change the answer to a GET of JWKS_PATH without a query string: the host
# (ALLOWED_HOSTS), the scheme (SSL redirect, HSTS), the Accept header (negotiation), the Origin (CORS) and where
# the server listens.
_REPLAY_KEY = (
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_ACCEPT",
    "HTTP_ORIGIN",
)
_REPLAYS_MAX = 64
_REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


@dataclass(frozen=True)
class Replay:
    document: Any
    status: str
    headers: list[tuple[str, str]]
    body: bytes


class LeanFront:
    """The gateway's WSGI application: lean routes answered in front of Django's handler, the rest handed to it.

    For a lean route this runs what Django's handler would, minus the request_started/finished signals (their
    receivers close database connections; the gateway has none) and the per-layer wrappers: the request context
    and access log (in_request_context), CorsMiddleware's response headers (a GET is never a preflight),
    SecurityMiddleware and CommonMiddleware (the same instances' own process_request/process_response), Django's
    exception-to-response conversion and its log of 4xx/5xx answers.
    A request either middleware would redirect or refuse (SSL redirect, PREPEND_WWW, disallowed host or user
    agent) is left entirely to Django.
    """

    def __init__(self, django_app: WSGIHandler) -> None:
        self.django = django_app
        self.enabled = bool(settings.LEAN_ROUTES) and tuple(settings.MIDDLEWARE) == GATEWAY_MIDDLEWARE
        self.security = SecurityMiddleware(_never_called)
        self.common = CommonMiddleware(_never_called)
        self.cors = CorsMiddleware(_never_called)
        # JWKS answers, replayed while the same key-set document is current (see _replay).
        self._replays: dict[tuple[Any, ...], Replay] = {}
        self._replayable = self.enabled and not settings.DISALLOWED_USER_AGENTS

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.enabled and environ.get("REQUEST_METHOD") == "GET":
            document = self._jwks_document(environ)
            replayed = self._replay(environ, document, start_response) if document is not None else None
            if replayed is not None:
                return replayed
            # A copy: WSGIRequest writes the decoded path back into the dict it is given, and Django's handler,
            # given the same dict afterwards, could no longer read a path outside latin-1 (a 500).
            request = WSGIRequest(dict(environ))
            found = lean_match(request)
            if found is not None and self._passes_middleware(request):
                response = self._respond(request, *found)
                status = f"{response.status_code} {response.reason_phrase}"
                headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
                if (
                    document is not None
                    and document is self._jwks_document(environ)
                    and response.status_code == 200
                    and not response.cookies
                ):
                    self._remember(environ, document, status, headers, response.content)  # type: ignore[attr-defined]
                start_response(status, headers)
                return [response.content]  # type: ignore[attr-defined]
        return self.django(environ, start_response)

    # -- JWKS replay -----------------------------------------------------------------------------------------
    # The key-set document changes only when the gateway refetches it, so its whole answer (status, headers,
    # body), once worked out above, is replayed for the same document and the same request shape (host, scheme,
    # Accept): only the request id differs, and the access log line is written as in_request_context writes it.
    def _jwks_document(self, environ: dict[str, Any]) -> Any:
        if not self._replayable or environ.get("PATH_INFO") != JWKS_PATH or environ.get("QUERY_STRING"):
            return None
        if environ.get("SCRIPT_NAME"):
            return None
        # Only a fresh document already cached: looking never fetches, so the full path fetches (and logs) alike.
        return jwks.get_jwks().current_document()

    @staticmethod
    def _replay_key(environ: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(environ.get(name) for name in _REPLAY_KEY)

    def _remember(
        self, environ: dict[str, Any], document: Any, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        if len(self._replays) >= _REPLAYS_MAX:
            self._replays.clear()
        kept = [(name, value) for name, value in headers if name.lower() != REQUEST_ID_HEADER.lower()]
        self._replays[self._replay_key(environ)] = Replay(document=document, status=status, headers=kept, body=body)

    def _replay(self, environ: dict[str, Any], document: Any, start_response: Callable[..., Any]) -> list[bytes] | None:
        hit = self._replays.get(self._replay_key(environ))
        if hit is None or hit.document is not document:
            return None
        started = time.perf_counter()
        request_id = accept_request_id(environ.get(_REQUEST_ID_ENVIRON))
        rid_token, uid_token = request_id_var.set(request_id), user_id_var.set(None)
        try:
            start_response(hit.status, [*hit.headers, (REQUEST_ID_HEADER, request_id)])
            access_log(method="GET", path=JWKS_PATH, status=200, started=started)
        finally:
            request_id_var.reset(rid_token)
            user_id_var.reset(uid_token)
        return [hit.body]

    def _passes_middleware(self, request: HttpRequest) -> bool:
        try:
            return self.security.process_request(request) is None and self.common.process_request(request) is None
        except Exception:  # noqa: BLE001 - a refused host or user agent: Django answers (and logs) it
            return False

    def _respond(self, request: HttpRequest, route: LeanRoute, kwargs: dict[str, Any]) -> HttpResponseBase:
        def inner(request: HttpRequest) -> HttpResponseBase:
            try:
                response = route.respond(request, kwargs)
            except Exception as exc:  # noqa: BLE001 - as convert_exception_to_response
                response = response_for_exception(request, exc)
            response = self.common.process_response(request, response)
            response = self.security.process_response(request, response)  # type: ignore[arg-type]
            if request.META.get("HTTP_ORIGIN"):
                return self.cors.add_response_headers(request, response)
            # No Origin: what add_response_headers does then (Vary only), without building request.headers.
            if self.cors.is_enabled(request):
                patch_vary_headers(response, ("origin",))
            return response

        set_urlconf(settings.ROOT_URLCONF)
        response = in_request_context(request, inner)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)  # type: ignore[arg-type]
        return response


def _never_called(request: HttpRequest) -> HttpResponseBase:
    raise AssertionError("the WSGI front calls the middleware's hooks, not the middleware")


@lru_cache(maxsize=4096)
def _resolved(
    path: str, urlconf: str | None, version: int
) -> tuple[type[RouteView] | None, tuple[tuple[str, Any], ...]]:
    """The route view a path routes to (None: another view) and its arguments, as Django resolves it with the
    route table at `version`."""
    try:
        match = resolve(path, urlconf=urlconf)
    except Resolver404:
        return None, ()
    view_class = getattr(match.func, "view_class", None)
    if not (isinstance(view_class, type) and issubclass(view_class, RouteView)):
        return None, ()
    return view_class, tuple(match.kwargs.items())


@receiver(setting_changed)
def _forget_routes(*, setting: str, **kwargs: Any) -> None:
    if setting == "ROOT_URLCONF":
        _resolved.cache_clear()
