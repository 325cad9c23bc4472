"""The error envelope of SPEC §2 as tests expect it, written out independently of the code that renders it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def envelope(status: int, message: str | list[str], code: str, **fields: list[str]) -> dict[str, Any]:
    """`{"statusCode", "error", "message", "code"}`, plus `fields` when given (validation errors)."""
    body: dict[str, Any] = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message, "code": code}
    if fields:
        body["fields"] = fields
    return body
