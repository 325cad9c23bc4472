"""Content-Security-Policy on the HTML pages a service serves (browsable API, docs UI): only what is ours runs.

The policy is the `SECURE_CSP` setting, a mapping of directive to sources, in the shape of Django 6's setting of the
same name (whose middleware this one stands for until then). Only `text/html` answers get it: a JSON answer runs
nothing in a browser, and leaving the header off keeps the gateway's JSON answers identical on its lean path, which
stands in front of the middleware (gateway/api/fastlane.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.http.response import HttpResponseBase

CSP_HEADER = "Content-Security-Policy"


def policy_header(policy: Mapping[str, Sequence[str]]) -> str:
    """`{"default-src": ["'self'"], ...}` → `default-src 'self'; ...` (a directive without sources stands alone)."""
    return "; ".join(" ".join((directive, *sources)) for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        policy: Mapping[str, Sequence[str]] = settings.SECURE_CSP
        if not policy:
            raise ImproperlyConfigured("ContentSecurityPolicyMiddleware needs a SECURE_CSP policy")
        self.get_response = get_response
        self.header = policy_header(policy)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html") and CSP_HEADER not in response:
            response[CSP_HEADER] = self.header
        return response
