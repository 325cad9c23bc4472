"""Request id and access log: one line per HTTP request, with the id that then travels over NATS."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from common.conf.context import accept_request_id, request_id_var, user_id_var
from common.contracts.envelope import REQUEST_ID_HEADER

log = logging.getLogger("common.http")
# Read from META: request.headers would re-spell the name of every header the request has, for this one.
_REQUEST_ID_META = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return in_request_context(request, self.get_response)


def in_request_context(
    request: HttpRequest, get_response: Callable[[HttpRequest], HttpResponseBase]
) -> HttpResponseBase:
    """`get_response(request)` with the request id (accepted or new) and user id set, then the access log line."""
    started = time.perf_counter()
    request_id = accept_request_id(request.META.get(_REQUEST_ID_META))
    rid_token = request_id_var.set(request_id)
    uid_token = user_id_var.set(None)
    try:
        response = get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        access_log(method=request.method, path=request.path, status=response.status_code, started=started)
        return response
    finally:
        request_id_var.reset(rid_token)
        user_id_var.reset(uid_token)


def access_log(*, method: str | None, path: str, status: int, started: float) -> None:
    """The one line per HTTP request (the request id and user id come from the context)."""
    log.info(
        "http request",
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "user_id": user_id_var.get(),
        },
    )
