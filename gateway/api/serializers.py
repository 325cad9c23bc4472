"""Shape of every request body and query (SPEC §2); unknown properties are refused. Policy checks live in the services."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from common.contracts.auth import KeySet, SeedDone, SessionInfo
from common.contracts.events import ROLES
from common.contracts.users import (
    NAME_LENGTH,
    NAME_PATTERN,
    USERNAME_LENGTH,
    USERNAME_PATTERN,
    UserPage,
    UserPublic,
)
from gateway.api.ops import LOG_LEVELS, SERVICES
from gateway.api.struct_serializers import serializer_of

CODE_PATTERN = re.compile(r"^\d{6}$")
# Recovery tokens and session ids are opaque to the gateway: printable ASCII, no blanks, bounded.
TOKEN_PATTERN = re.compile(r"^[\x21-\x7e]+$")
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_PASSWORD = 128
MAX_OFFSET = 2**31 - 1


class StrictSerializer(serializers.Serializer):
    """Refuses properties it does not declare (the original's whitelist + forbidNonWhitelisted), and values of
    the wrong JSON type for text fields: DRF would turn `{"slug": 42}` into "42", which the schema says is invalid
    (the original's class-validator refused it too)."""

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            unknown = {str(name): [f"property {name} should not exist"] for name in data if name not in self.fields}
            unknown.update(
                {
                    name: ["Not a valid string."]
                    for name, field in self.fields.items()
                    if isinstance(field, serializers.CharField | serializers.UUIDField)
                    and data.get(name) is not None
                    and not isinstance(data[name], str)
                }
            )
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            raise ValidationError({**detail, **unknown}) from None
        if unknown:
            raise ValidationError(unknown)
        return value


def _rule_field(
    pattern: re.Pattern[str], length: tuple[int, int], message: str, **kwargs: Any
) -> serializers.RegexField:
    """A field of one of the account rules of common/contracts/users.py: its pattern, length range and message."""
    return serializers.RegexField(
        pattern, min_length=length[0], max_length=length[1], error_messages={"invalid": message}, **kwargs
    )


def name_field(**kwargs: Any) -> serializers.RegexField:
    return _rule_field(NAME_PATTERN, NAME_LENGTH, "name must contain only letters and spaces", **kwargs)


def username_field(**kwargs: Any) -> serializers.RegexField:
    return _rule_field(USERNAME_PATTERN, USERNAME_LENGTH, "username must contain only letters and numbers", **kwargs)


def password_field(**kwargs: Any) -> serializers.CharField:
    # Never trimmed: blanks are part of a password. The full policy is the auth service's.
    return serializers.CharField(
        max_length=MAX_PASSWORD, trim_whitespace=False, style={"input_type": "password"}, **kwargs
    )


def slug_field(**kwargs: Any) -> serializers.RegexField:
    # Blanks are trimmed, so a slug of blanks is empty (400): the pattern says "something besides blanks".
    return serializers.RegexField(r"\S", max_length=254, **kwargs)


def roles_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=ROLES), allow_empty=False, max_length=len(ROLES), **kwargs
    )


class SignupSerializer(StrictSerializer):
    name = name_field()
    username = username_field()
    email = serializers.EmailField(max_length=254)
    password = password_field()


class VerifyAccountSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    code = serializers.RegexField(CODE_PATTERN, error_messages={"invalid": "code must be 6 digits"})


class EmailSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)


class LoginSerializer(StrictSerializer):
    slug = slug_field(help_text="E-mail if it contains '@', else username.")
    password = password_field()


class SlugSerializer(StrictSerializer):
    slug = slug_field()


class ResetPasswordSerializer(StrictSerializer):
    recoveryToken = serializers.RegexField(TOKEN_PATTERN, max_length=1024)
    password = password_field()


class EmptySerializer(StrictSerializer):
    """Routes without a body still refuse one with properties."""


class LogoutQuerySerializer(StrictSerializer):
    all = serializers.BooleanField(default=False, help_text="End every session of the user.")


class DenyAccessSerializer(StrictSerializer):
    userId = serializers.UUIDField()


class UserListQuerySerializer(StrictSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
    # Bounded: an unbounded integer would not even fit the NATS message's JSON (int64) to main_api.
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, default=0)
    active = serializers.BooleanField(required=False)
    verified = serializers.BooleanField(required=False)


_PLAIN_DIGITS = re.compile(r"[0-9]{1,10}")
_OTHER: Any = object()


def _plain_value(field: serializers.Field, raw: str) -> Any:
    """`raw` as `field` reads it, when it is a plain valid value (digits within bounds, a boolean word); else _OTHER."""
    if isinstance(field, serializers.IntegerField):
        if not _PLAIN_DIGITS.fullmatch(raw):
            return _OTHER
        value = int(raw)
        if (field.min_value is not None and value < field.min_value) or (
            field.max_value is not None and value > field.max_value
        ):
            return _OTHER
        return value
    if isinstance(field, serializers.BooleanField):
        if raw in field.TRUE_VALUES:
            return True
        if raw in field.FALSE_VALUES:
            return False
    return _OTHER


@lru_cache(maxsize=32)
def _plain_fields(serializer_class: type[serializers.Serializer]) -> dict[str, serializers.Field] | None:
    """The declared fields when `_plain_value` reads every one as the serializer would (None: it does not)."""
    if serializer_class.validate is not serializers.Serializer.validate:
        return None
    fields: dict[str, serializers.Field] = dict(serializer_class._declared_fields)  # type: ignore[attr-defined]
    for name, field in fields.items():
        bounds = 0
        if isinstance(field, serializers.IntegerField):
            bounds = (field.min_value is not None) + (field.max_value is not None)
        elif not isinstance(field, serializers.BooleanField):
            return None
        plain = field.source in (None, name) and not field.read_only and not field.allow_null
        if not plain or (field.default is not empty and callable(field.default)) or len(field.validators) != bounds:
            return None
        if hasattr(serializer_class, f"validate_{name}"):
            return None
    return fields


def query_validated(serializer_class: type[serializers.Serializer], params: Mapping[str, str]) -> dict[str, Any]:
    """`validated(serializer_class, params)`, without building the serializer when every parameter is a plain
    valid value (the usual query; a serializer deep-copies its fields on each instantiation, which costs more
    than the rest of a request). Anything else (unknown parameters, out of range, signs, blanks, other words, a
    missing required one) is left to the serializer itself, which also words the errors."""
    fields = _plain_fields(serializer_class)
    if fields is None or any(name not in fields for name in params):
        return validated(serializer_class, params)
    result: dict[str, Any] = {}
    for name, field in fields.items():
        raw = params.get(name)
        if raw is None:
            if field.default is not empty:
                result[name] = field.default
            elif field.required:
                return validated(serializer_class, params)
            continue
        value = _plain_value(field, raw)
        if value is _OTHER:
            return validated(serializer_class, params)
        result[name] = value
    return result


class UserCreateSerializer(SignupSerializer):
    roles = roles_field()


class UserUpdateSerializer(StrictSerializer):
    # At least one change; the OpenAPI schema states it as minProperties (gateway/api/schema.py).
    min_fields = 1

    name = name_field(required=False)
    username = username_field(required=False)
    email = serializers.EmailField(max_length=254, required=False)
    roles = roles_field(required=False)
    password = password_field(required=False)
    oldPassword = password_field(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) < self.min_fields:
            raise ValidationError("Nothing to update")
        return attrs


class LogLevelQuerySerializer(StrictSerializer):
    service = serializers.ChoiceField(choices=SERVICES)


@extend_schema_field({"type": "string", "enum": list(LOG_LEVELS), "description": "Case-insensitive."})
class LogLevelField(serializers.CharField):
    """A level name; validated (and upper-cased) by LogLevelSerializer.validate_level."""


class LogLevelSerializer(StrictSerializer):
    service = serializers.ChoiceField(choices=SERVICES)
    level = LogLevelField(max_length=16)

    def validate_level(self, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValidationError(f"level must be one of {', '.join(LOG_LEVELS)}")
        return level


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validate `data` or raise the 400 envelope with per-field messages."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def path_uuid(value: str, *, field: str = "id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationError({field: ["Must be a valid UUID."]}) from None


def path_session_id(value: str) -> str:
    if not SESSION_ID_PATTERN.match(value):
        raise ValidationError({"sid": ["Not a valid session id."]})
    return value


# --- response shapes, for the OpenAPI document only ------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
class MessageField(serializers.Field):
    """A message, or a list of them for validation errors."""


class ErrorSerializer(serializers.Serializer):
    statusCode = serializers.IntegerField()
    error = serializers.CharField()
    message = MessageField()
    code = serializers.CharField(required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        # Added here because a class attribute named `fields` would shadow Serializer.fields.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False
        )
        return fields


class AccessTokenSerializer(serializers.Serializer):
    accessToken = serializers.CharField()


# The replies the services answer with, as their contracts define them.
UserSerializer = serializer_of(UserPublic, "UserSerializer")
UserPageSerializer = serializer_of(UserPage, "UserPageSerializer")
SessionSerializer = serializer_of(SessionInfo, "SessionSerializer")
SeedReplySerializer = serializer_of(SeedDone, "SeedReplySerializer")
JwksSerializer = serializer_of(KeySet, "JwksSerializer")


class LogLevelReplySerializer(serializers.Serializer):
    service = serializers.ChoiceField(choices=SERVICES)
    level = serializers.ChoiceField(choices=LOG_LEVELS)


class OpenIdConfigurationSerializer(serializers.Serializer):
    """The discovery document (OpenID Connect Discovery 1.0 §3, RFC 8414 §2): the fields this server fills."""

    issuer = serializers.URLField(help_text="Equal to the access tokens' `iss`.")
    jwks_uri = serializers.URLField(help_text="The public signing keys (JWKS).")
    token_endpoint = serializers.URLField(help_text="Client-credentials tokens for service accounts.")
    grant_types_supported = serializers.ListField(child=serializers.CharField())
    token_endpoint_auth_methods_supported = serializers.ListField(child=serializers.CharField())
    response_types_supported = serializers.ListField(child=serializers.CharField())
    subject_types_supported = serializers.ListField(child=serializers.CharField())
    id_token_signing_alg_values_supported = serializers.ListField(child=serializers.CharField())
    token_endpoint_auth_signing_alg_values_supported = serializers.ListField(child=serializers.CharField())
    scopes_supported = serializers.ListField(child=serializers.CharField())
