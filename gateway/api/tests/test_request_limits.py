"""Hostile request shapes answer a 4xx in the envelope: oversized bodies, deep nesting, a foreign Host."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from common.api.parsers import MAX_DEPTH
from common.contracts.errors import reason_phrase
from devstack.testing.envelopes import envelope


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_body_over_the_limit_is_413_envelope() -> None:
    body = '{"slug": "' + "a" * 2048 + '", "password": "x"}'
    response = Client().post("/api/login", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {
        "statusCode": 413,
        "error": reason_phrase(413),  # the phrase's wording changed across Python versions
        "message": "Request body too large",
        "code": "request_too_large",
    }


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,  # past json's own recursion limit
        '{"slug": ' + "[" * 900 + "]" * 900 + ', "password": "x"}',  # parses, but would break validation
        '{"slug": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + ', "password": "x"}',
    ],
)
def test_deeply_nested_json_is_400_envelope(body: str) -> None:
    response = Client().post("/api/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_nesting_within_the_bound_is_validated_as_usual() -> None:
    body = '{"slug": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + ', "password": "x"}'
    response = Client().post("/api/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"slug": ["Not a valid string."]}


def test_foreign_host_is_400_envelope() -> None:
    response = Client(HTTP_HOST="evil.example").get("/api/user")
    assert response.status_code == 400
    assert response.json() == envelope(400, "Bad Request", "bad_request")
