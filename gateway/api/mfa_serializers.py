"""Bodies and answers of the second-factor routes (SPEC §2b), and the login's two answers."""

from __future__ import annotations

import re

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from common.contracts.auth import MfaChallenge
from gateway.api.serializers import CODE_PATTERN, AccessTokenSerializer, StrictSerializer, password_field
from gateway.api.struct_serializers import serializer_of

MFA_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# A TOTP code (6 digits) or a recovery code (10 base32 characters, with or without its dash and blanks).
SECOND_FACTOR_CODE_PATTERN = re.compile(r"^\s*(\d{6}|[A-Za-z2-7][A-Za-z2-7 -]{8,18}[A-Za-z2-7])\s*$")


# The answers, as the auth service's contracts define them.
MfaChallengeSerializer = serializer_of(MfaChallenge, "MfaChallengeSerializer")


LOGIN_REPLY = PolymorphicProxySerializer(
    component_name="LoginReply",
    serializers=[AccessTokenSerializer, MfaChallengeSerializer],
    resource_type_field_name=None,
    many=False,
)


class LoginMfaSerializer(StrictSerializer):
    mfaToken = serializers.RegexField(MFA_TOKEN_PATTERN, help_text="From the login's answer.")
    code = serializers.RegexField(
        CODE_PATTERN,
        required=False,
        help_text="The authenticator app's 6-digit code.",
        error_messages={"invalid": "code must be 6 digits"},
    )
    recoveryCode = serializers.RegexField(
        SECOND_FACTOR_CODE_PATTERN, required=False, max_length=32, help_text="One of the recovery codes."
    )

    def validate(self, attrs: dict[str, str]) -> dict[str, str]:
        if ("code" in attrs) == ("recoveryCode" in attrs):
            raise serializers.ValidationError({"code": ["give one of code or recoveryCode"]})
        return attrs


class TotpConfirmSerializer(StrictSerializer):
    code = serializers.RegexField(CODE_PATTERN, error_messages={"invalid": "code must be 6 digits"})


class PasswordAndCodeSerializer(StrictSerializer):
    password = password_field()
    code = serializers.RegexField(
        SECOND_FACTOR_CODE_PATTERN, max_length=32, help_text="A TOTP code or one of the recovery codes."
    )
