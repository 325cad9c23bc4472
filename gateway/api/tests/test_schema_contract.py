"""The OpenAPI document says what the serializers enforce (what `make verify`'s fuzzing holds them to)."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.exceptions import ValidationError

from gateway.api import serializers as s


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_request_bodies_refuse_undeclared_properties(schema: dict[str, Any]) -> None:
    requests = {name: body for name, body in schema["components"]["schemas"].items() if name.endswith("Request")}
    # The OAuth token request ignores parameters it does not know, as RFC 6749 §3.2 asks of it.
    oauth = requests.pop("TokenRequestRequest")
    assert "additionalProperties" not in oauth
    assert requests
    assert all(body["additionalProperties"] is False for body in requests.values())


def test_an_empty_user_update_is_refused_and_documented_so(schema: dict[str, Any]) -> None:
    assert schema["components"]["schemas"]["PatchedUserUpdateRequest"]["minProperties"] == 1
    with pytest.raises(ValidationError):
        s.validated(s.UserUpdateSerializer, {})


def test_log_level_is_an_enum(schema: dict[str, Any]) -> None:
    assert schema["components"]["schemas"]["LevelEnum"]["enum"] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def test_session_id_path_parameter_has_the_accepted_pattern(schema: dict[str, Any]) -> None:
    (parameter,) = schema["paths"]["/api/auth/sessions/{sid}"]["delete"]["parameters"]
    assert parameter["schema"]["pattern"] == s.SESSION_ID_PATTERN.pattern


@pytest.mark.parametrize(
    ("serializer", "data", "field"),
    [
        (s.SlugSerializer, {"slug": 42}, "slug"),
        (s.LoginSerializer, {"slug": "ada", "password": 1234567890}, "password"),
        (s.DenyAccessSerializer, {"userId": 1}, "userId"),
    ],
)
def test_text_fields_refuse_other_json_types(serializer: type, data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        s.validated(serializer, data)
    assert info.value.detail[field] == ["Not a valid string."]  # type: ignore[index]


def test_a_slug_of_blanks_is_refused_and_the_schema_says_so(schema: dict[str, Any]) -> None:
    assert schema["components"]["schemas"]["SlugRequest"]["properties"]["slug"]["pattern"] == r"\S"
    with pytest.raises(ValidationError):
        s.validated(s.SlugSerializer, {"slug": "   "})


def test_offset_is_bounded_to_what_the_services_can_carry(schema: dict[str, Any]) -> None:
    (offset,) = [p for p in schema["paths"]["/api/user"]["get"]["parameters"] if p["name"] == "offset"]
    assert offset["schema"]["maximum"] == s.MAX_OFFSET
    with pytest.raises(ValidationError):
        s.validated(s.UserListQuerySerializer, {"offset": str(2**64)})
