"""The error envelope: one DRF exception handler and Django error views, so every error has one shape."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import resolve
from django.utils.http import escape_leading_slashes
from rest_framework import exceptions as drf
from rest_framework.response import Response

from common.contracts.errors import ServiceError, reason_phrase

log = logging.getLogger(__name__)


def envelope(
    status: int, message: str | list[str], *, fields: dict[str, list[str]] | None = None, code: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"statusCode": status, "error": reason_phrase(status), "message": message}
    if code:
        body["code"] = code
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF validation details → {"field": ["message", ...]} (nested fields dotted)."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                out.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def validation_messages(fields: dict[str, list[str]]) -> list[str]:
    return [f"{name}: {msg}" if name != "non_field_errors" else msg for name, msgs in fields.items() for msg in msgs]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error leaves as the envelope, with the right status."""
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceError):
        return Response(exc.to_body(), status=exc.status, headers=exc.headers or None)
    if isinstance(exc, RequestDataTooBig):
        # Raised when a view first reads a body over DATA_UPLOAD_MAX_MEMORY_SIZE (unread: the limit is checked
        # against Content-Length). Django would answer its generic 400 for this SuspiciousOperation.
        return Response(envelope(413, "Request body too large", code="request_too_large"), status=413)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.ValidationError):
        fields = _flatten(exc.detail)
        return Response(envelope(400, validation_messages(fields), fields=fields, code="validation_failed"), status=400)
    if isinstance(exc, drf.APIException):
        status = exc.status_code
        if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
            status = 401
            auth_header = getattr(exc, "auth_header", None)
            if auth_header:
                headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None) if isinstance(exc, drf.Throttled) else None
        if wait is not None:
            headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        detail = exc.detail
        message = str(detail) if not isinstance(detail, (list, dict)) else validation_messages(_flatten(detail))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else None
        return Response(
            envelope(status, message, code=code if isinstance(code, str) else None),
            status=status,
            headers=headers or None,
        )
    return None


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(envelope(404, f"Cannot {request.method} {request.path}", code="not_found"), status=404)


def unknown_route_view(request: HttpRequest) -> HttpResponseBase:
    """The last route of a URLconf (`re_path("", ...)`): a path no other route takes answers the 404 envelope.

    Routed, not raised: under DEBUG, Django answers an unmatched path with its HTML technical page instead of
    handler404, whatever the client accepts. As APPEND_SLASH does (CommonMiddleware cannot see past a catch-all),
    a GET or HEAD of a path that exists with a trailing slash is redirected there.
    """
    if request.method in ("GET", "HEAD") and settings.APPEND_SLASH and not request.path_info.endswith("/"):
        match = resolve(f"{request.path_info}/", urlconf=getattr(request, "urlconf", None))
        if match.func is not unknown_route_view:
            return HttpResponsePermanentRedirect(escape_leading_slashes(request.get_full_path(force_append_slash=True)))
    return not_found_view(request)


def server_error_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(envelope(500, "Internal server error", code="internal_error"), status=500)


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(envelope(400, "Bad Request", code="bad_request"), status=400)


def permission_denied_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(envelope(403, "Forbidden", code="forbidden"), status=403)
