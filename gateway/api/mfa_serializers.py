"""Bodies and answers of the second-factor routes (SPEC §2b), and the login's two answers."""

from __future__ import annotations

import re

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from gateway.api.serializers import CODE_PATTERN, AccessTokenSerializer, StrictSerializer, password_field

MFA_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# A TOTP code (6 digits) or a recovery code (10 base32 characters, with or without its dash and blanks).
SECOND_FACTOR_CODE_PATTERN = re.compile(r"^\s*(\d{6}|[A-Za-z2-7][A-Za-z2-7 -]{8,18}[A-Za-z2-7])\s*$")
METHODS = ("totp", "recovery_code", "passkey")


class MfaChallengeSerializer(serializers.Serializer):
    mfaRequired = serializers.BooleanField(help_text="Always true: the password was right, a second factor is needed.")
    mfaToken = serializers.CharField(help_text="For POST /api/login/mfa: single use, 5 minutes, 5 wrong codes.")
    methods = serializers.ListField(child=serializers.ChoiceField(choices=METHODS))


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


class TotpSetupSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32, for typing into an authenticator app.")
    otpauthUri = serializers.CharField(help_text="The otpauth://totp/ URI the QR code holds.")
    qrSvg = serializers.CharField(help_text="The QR code as an inline <svg> element.")


class RecoveryCodesSerializer(serializers.Serializer):
    recoveryCodes = serializers.ListField(
        child=serializers.CharField(), help_text="Shown once: only their hashes are kept."
    )


class PasskeySerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    createdAt = serializers.DateTimeField()
    lastUsedAt = serializers.DateTimeField(allow_null=True)


class MfaStatusSerializer(serializers.Serializer):
    totp = serializers.BooleanField()
    recoveryCodesLeft = serializers.IntegerField()
    passkeys = PasskeySerializer(many=True)
