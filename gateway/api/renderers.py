"""Rendering: orjson for every JSON answer (the fast path), DRF's browsable API for a person asking for HTML."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from rest_framework.exceptions import APIException
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from gateway.api.csrf import CSRF_HEADER, CsrfProtected, csrf_cookie_name

if TYPE_CHECKING:
    # DRF imports the renderers while rest_framework.views itself is loading: these are for annotations only.
    from rest_framework.request import Request
    from rest_framework.views import APIView

# DRF's encoder knows the types orjson does not (lazy strings, Decimal, QuerySet...); orjson calls it only for those.
_fallback = JSONEncoder().default


class OrjsonRenderer(JSONRenderer):
    """DRF's JSONRenderer contract (media type, empty body for None) with orjson doing the encoding."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=_fallback, option=orjson.OPT_NON_STR_KEYS)


class GatewayBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF's browsable API, chosen only when the client asks for text/html: pretty JSON, and forms that send the
    gateway's CSRF header (the template's script copies the CSRF cookie into it)."""

    template = "gateway_api/browsable_api.html"

    def get_content(
        self,
        renderer: BaseRenderer,
        data: Any,
        accepted_media_type: str | None,
        renderer_context: Mapping[str, Any],
    ) -> str:
        content = super().get_content(renderer, data, accepted_media_type, renderer_context)
        # The orjson renderer ignores `indent` (it is the JSON fast path); a page for a person re-indents here.
        try:
            return orjson.dumps(orjson.loads(content), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            return content

    def show_form_for_method(self, view: APIView, method: str, request: Request, obj: Any) -> bool:
        """A form is shown to whoever may submit it. CSRF is left out: the navigation that displays the page never
        carries the header, while the form's own submit does."""
        if method not in view.allowed_methods:
            return False
        try:
            return all(
                permission.has_permission(request, view)
                for permission in view.get_permissions()
                if not isinstance(permission, CsrfProtected)
            )
        except APIException:
            return False

    def get_context(
        self, data: Any, accepted_media_type: str | None, renderer_context: Mapping[str, Any]
    ) -> dict[str, Any]:
        context = super().get_context(data, accepted_media_type, renderer_context)
        # No inline <style> (the gateway's CSP refuses it): DRF fills it with Pygments' CSS, which only highlights
        # Markdown view descriptions, and the gateway has no Markdown.
        context["code_style"] = None
        context["gateway_csrf"] = {"cookie": csrf_cookie_name(), "header": CSRF_HEADER}
        return context


def renders_html(request: Request) -> bool:
    """True when the browsable API answers this request (the client asked for text/html)."""
    return isinstance(getattr(request, "accepted_renderer", None), BrowsableAPIRenderer)
