"""orjson rendering of API responses: the fast path of every JSON answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

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
