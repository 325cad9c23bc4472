"""HTTP requests to the auth service (its admin) run with the caller's IP and user agent in the audit context."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from auth_service.audit.context import client_context


class ClientContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # REMOTE_ADDR: the admin is reached directly (or through a proxy whose address is then what is logged);
        # a client-supplied X-Forwarded-For is never trusted here.
        with client_context(ip=request.META.get("REMOTE_ADDR"), user_agent=request.headers.get("User-Agent")):
            return self.get_response(request)
