"""JSON encoding of envelopes on the wire (orjson: fast, strict UTF-8, datetimes and UUIDs handled)."""

from __future__ import annotations

from typing import Any

import orjson

# JSON already encoded (e.g. built by PostgreSQL), embedded in a reply as it is: `dumps` copies its bytes.
RawJSON = orjson.Fragment


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)
