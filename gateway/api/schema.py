"""OpenAPI pieces: the bearer scheme of AccessTokenAuthentication, security requirements and error responses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse

from gateway.api.serializers import ErrorSerializer

BEARER = "bearerAuth"
REFRESH_COOKIE = "refreshCookie"
CSRF_HEADER = "csrfHeader"


def security(*schemes: str) -> Any:
    """One OpenAPI security requirement needing all `schemes` (typed Any: the stub says list of names, but
    drf-spectacular copies the value verbatim into `security`, which OpenAPI defines as requirement objects)."""
    return [{name: [] for name in schemes}] if schemes else []


_DESCRIPTIONS = {
    400: "Invalid input (validation errors list each field under `fields`).",
    401: "Missing, invalid or expired credentials.",
    403: "Authenticated but not allowed (role, permission matrix or CSRF).",
    404: "Unknown resource.",
    409: "Conflict (for example a username already taken).",
    429: "Throttled; see the Retry-After header.",
    502: "A service answered something the gateway could not read.",
    503: "A service (or the session store) is unavailable.",
    504: "A service did not answer in time.",
}


def errors(*statuses: int, shape: Any = ErrorSerializer) -> dict[int, Any]:
    """Error responses of an operation; 503 and 504 apply to every forwarded request."""
    return errors_only(*statuses, 503, 504, shape=shape)


def errors_only(*statuses: int, shape: Any = ErrorSerializer) -> dict[int, Any]:
    """Error responses of an operation, exactly these, in the envelope unless `shape` says otherwise."""
    return {status: OpenApiResponse(shape, description=_DESCRIPTIONS[status]) for status in statuses}


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "gateway.api.authentication.AccessTokenAuthentication"
    name = BEARER

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        scheme = "Bearer"  # the HTTP auth scheme's name, not a secret
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=scheme, bearer_format="JWT"
        )


class StrictSerializerSchema(OpenApiSerializerExtension):
    """StrictSerializer refuses undeclared properties (400), so its schema says `additionalProperties: false`;
    a serializer that needs at least `min_fields` properties (a PATCH with nothing to change) says so too."""

    target_class = "gateway.api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        min_fields = int(getattr(self.target, "min_fields", 0))
        if min_fields:
            schema["minProperties"] = min_fields
        return schema


class RouteSchema(AutoSchema):
    """drf-spectacular documents bodies of POST, PUT and PATCH only; a route's DELETE that declares a body (see
    Route.reads_body) gets it documented too."""

    def _get_request_body(self, direction: str = "request") -> Any:
        route_for = getattr(self.view, "route_for", None)
        route = route_for(self.method) if route_for else None
        if self.method != "DELETE" or route is None or route.body is None:
            return super()._get_request_body(direction)
        self.method = "POST"  # the base class decides by method name alone
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"
