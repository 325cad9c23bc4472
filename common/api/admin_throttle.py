"""The Django admin's login form, limited per client (IPv4 address or IPv6 /64) in every service that has one."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch, reverse

from common.contracts.errors import ServiceUnavailable
from common.throttling import bucket_for, count_hits, parse_rate, throttle_source

TOO_MANY = "Too many login attempts, try again later"


class AdminLoginThrottleMiddleware:
    """Counts every POST to the admin's login form per client; over `ADMIN_LOGIN_RATE` it is 429 with Retry-After.

    Before the form is read, so a refused attempt costs no password hash. Without Redis the form answers 503, never
    an unthrottled attempt.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self._login_path: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method == "POST" and request.path_info == self.login_path():
            source = throttle_source(str(request.META.get("REMOTE_ADDR") or ""))
            prefix = f"{settings.SERVICE_NAME}:admin-login:ip"
            bucket = bucket_for(prefix, source, parse_rate(settings.ADMIN_LOGIN_RATE), now=time.time())
            try:
                wait = count_hits([bucket])
            except ServiceUnavailable as exc:
                return HttpResponse(str(exc.message), status=503, content_type="text/plain")
            if wait is not None:
                return HttpResponse(TOO_MANY, status=429, content_type="text/plain", headers={"Retry-After": str(wait)})
        return self.get_response(request)

    def login_path(self) -> str | None:
        if self._login_path is None:
            try:
                self._login_path = reverse("admin:login")
            except NoReverseMatch:
                return None
        return self._login_path
