"""The DRF views of the public routes, generated from their declarations (gateway/api/routing.py).

One view class per path, `RouteView` configured by that path's routes: per method, its permissions, throttle
scope, browsable-API form, OpenAPI operation (`extend_schema` from the declaration) and handler. Every handler is
`serve`, which the lean path (gateway/api/fastlane.py) calls too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

from django.conf import settings
from django.http.response import HttpResponseBase
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from common.contracts.errors import ServiceError
from gateway.api import schema
from gateway.api import serializers as s
from gateway.api.cookies import clear_auth_cookies, set_access_cookie, set_auth_cookies
from gateway.api.renderers import renders_html
from gateway.api.routing import Access, AnyRequest, Route

EMPTY = OpenApiResponse(description="Empty body.")


def serve(route: Route, request: AnyRequest, kwargs: dict[str, Any]) -> Response:
    """A route's answer once its caller passed authentication, permissions and throttles: read and validate the
    request, run the route's body (forward by default), shape the reply."""
    reply = route.respond(route.read(request, kwargs))
    if isinstance(reply, Response):
        response = reply
    elif route.sets_tokens:
        response = token_response(request, reply)
    elif route.reply is None:
        response = Response(status=route.status)
    else:
        response = Response(reply, status=route.status)
    if route.cache_control:
        response["Cache-Control"] = route.cache_control
    if route.clears_cookies:
        clear_auth_cookies(response)
    return response


def token_response(request: AnyRequest, reply: Any) -> Response:
    """Login and refresh answer the access token in the body and the refresh token only as a cookie.

    A person using the browsable API (who asked for HTML) also gets the access token as an HttpOnly cookie, so
    the pages that follow are authenticated without pasting a token anywhere. A login that needs a second factor
    answers its challenge instead, with no cookie at all.
    """
    if isinstance(reply, dict) and reply.get("mfaRequired") is True:
        return Response({key: reply.get(key) for key in ("mfaRequired", "mfaToken", "methods")})
    if not isinstance(reply, dict) or not reply.get("accessToken") or not reply.get("refreshToken"):
        raise ServiceError("Malformed reply from service", status=502, code="bad_reply")
    response = Response({"accessToken": reply["accessToken"]})
    set_auth_cookies(response, refresh_token=str(reply["refreshToken"]), expires_at=reply.get("refreshExpiresAt"))
    if settings.BROWSABLE_API and isinstance(request, Request) and renders_html(request):
        set_access_cookie(response, access_token=str(reply["accessToken"]))
    return response


def default_cache_control(response: HttpResponseBase) -> None:
    """API answers are not cached unless the route says otherwise."""
    if not response.has_header("Cache-Control"):
        response["Cache-Control"] = "no-store"


class RouteView(APIView):
    """The view of one path, configured by its routes (`routes`, by method). A method no route declares (OPTIONS,
    or one answered 405) gets the access of the path and the permissions every one of its routes needs."""

    routes: ClassVar[Mapping[str, Route]] = {}
    access: ClassVar[Access]

    @classmethod
    def route_for(cls, method: str) -> Route | None:
        return cls.routes.get("GET" if method == "HEAD" else method)

    @classmethod
    def permission_classes_for(cls, method: str) -> Sequence[Any]:
        route = cls.route_for(method)
        return route.permissions if route else cls.permission_classes

    def get_permissions(self) -> Sequence[Any]:
        return [permission() for permission in self.permission_classes_for(self.request.method or "")]

    def get_parsers(self) -> list[BaseParser]:
        route = self.route_for(self.request.method or "") if getattr(self, "request", None) else None
        if route is not None and route.parsers is not None:
            return [parser() for parser in route.parsers]
        return super().get_parsers()

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [authentication() for authentication in self.access.authentication]

    @property
    def throttle_scope(self) -> str | None:
        route = self.route_for(self.request.method or "")
        return route.throttle if route else None

    @property
    def throttle_account_field(self) -> str | Callable[[Request], str] | None:
        route = self.route_for(self.request.method or "")
        return route.throttle_account if route else None

    def get_serializer(self, *args: Any, **kwargs: Any) -> Serializer:
        """For the browsable API only: an unbound serializer of the current method's body (none: `{}`)."""
        kwargs.pop("instance", None)
        route = self.route_for(self.request.method or "")
        return ((route.body if route else None) or s.EmptySerializer)(*args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        route = self.route_for(self.request.method or "")
        if route is not None and route.render_error is not None:
            response = route.render_error(response)
        if self.access.refresh_token and response.status_code == 401:
            clear_auth_cookies(response)  # a refused refresh token: the browser forgets it
        return response

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        default_cache_control(response)
        return response


@cache
def view_for(routes: tuple[Route, ...]) -> type[RouteView]:
    """The view class of one path's routes (the same class for the same routes)."""
    first = routes[0]
    name = next((route.name for route in routes if route.name), None)
    title = next((route.title for route in routes if route.title), None) or _title(name or first.path)
    common = list(first.permissions)
    for route in routes[1:]:
        while common and tuple(common) != route.permissions[: len(common)]:
            common.pop()
    attributes: dict[str, Any] = {
        "routes": {route.method: route for route in routes},
        "access": first.access,
        "authentication_classes": list(first.access.authentication),
        "permission_classes": common,
        "throttle_classes": list(first.access.throttles),
        "__module__": __name__,
    }
    for route in routes:
        attributes[route.method.lower()] = _handler(route)
    class_name = "".join(word.capitalize() for word in title.split()) + "View"
    return type(class_name, (RouteView,), attributes)


def _title(name: str) -> str:
    words = name.replace("/", " ").replace("-", " ").replace("_", " ").replace(".", " ").split()
    return " ".join(word for word in words if not word.startswith("<")).title()


def _handler(route: Route) -> Callable[..., Response]:
    def handler(self: RouteView, request: Request, **kwargs: Any) -> Response:
        return serve(route, request, kwargs)

    handler.__name__ = route.method.lower()
    return extend_schema(**operation(route))(handler)  # type: ignore[no-any-return]


def _description(route: Route) -> str:
    text = route.description or route.access.description
    if route.scope:
        text += f" Service accounts: a client credentials token with scope `{route.scope}`."
    return text


def operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation of a route, as drf-spectacular's `extend_schema` takes it."""
    success: Any = route.reply if route.reply is not None else EMPTY
    shape = route.error_reply or s.ErrorSerializer
    errors = (schema.errors if route.upstream else schema.errors_only)(*route.documented_errors, shape=shape)
    parameters: list[Any] = [
        OpenApiParameter(arg.name, arg.type, OpenApiParameter.PATH, description=arg.description, pattern=arg.pattern)
        for arg in route.args
    ]
    if route.query:
        parameters.append(route.query)
    kwargs: dict[str, Any] = {
        "tags": list(route.tags) or None,
        "summary": route.summary,
        "responses": {route.status: success, **errors},
        "auth": schema.security(*route.security),
        "description": _description(route),
    }
    if route.reads_body:
        kwargs["request"] = route.body
    if parameters:
        kwargs["parameters"] = parameters
    if route.operation_id:
        kwargs["operation_id"] = route.operation_id
    return kwargs
