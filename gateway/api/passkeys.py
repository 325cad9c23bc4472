"""The passkey routes of SPEC §2b (WebAuthn), and the small page that lets a person use them in a browser.

A browser's credential (`PublicKeyCredential.toJSON()`) arrives as the body itself, with `name` (registration) or
`mfaToken` (a second factor) beside its own properties; its nested `response` is checked for size and shape only:
the auth service verifies it. The sign-in and second factors page (`/api/auth/passkeys/`, TOTP as well) is plain
HTML whose scripts are static files, within the gateway's Content-Security-Policy.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from common.contracts import passkeys as pk
from common.contracts.mfa import PasskeyInfo
from common.contracts.rpc import Contract
from gateway.api import serializers as s
from gateway.api.csrf import CSRF_HEADER, csrf_cookie_name
from gateway.api.routing import BEARER, Call, PathArg, Route
from gateway.api.struct_serializers import serializer_of

# A credential is a few kilobytes (no attestation certificates are asked for); far more is garbage.
MAX_CREDENTIAL_PART_BYTES = 32 * 1024
BASE64URL = r"^[A-Za-z0-9_-]+$"
PASSKEY_ID = PathArg("passkey_id", "id", s.path_uuid, OpenApiTypes.UUID, "The passkey's id.")


@extend_schema_field({"type": "object", "additionalProperties": True})
class JsonObjectField(serializers.JSONField):
    """A JSON object of bounded size, passed on as it is (its content is the auth service's to check)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("Must be a JSON object.")
        if len(json.dumps(data)) > MAX_CREDENTIAL_PART_BYTES:
            raise ValidationError(f"Must be at most {MAX_CREDENTIAL_PART_BYTES} bytes long.")
        return data


class CredentialSerializer(s.StrictSerializer):
    """`PublicKeyCredential.toJSON()`: unknown top-level properties are refused, as on every route."""

    id = serializers.RegexField(BASE64URL, max_length=1400)
    rawId = serializers.RegexField(BASE64URL, max_length=1400)
    type = serializers.ChoiceField(choices=["public-key"])
    response = JsonObjectField()
    clientExtensionResults = JsonObjectField(required=False)
    authenticatorAttachment = serializers.ChoiceField(
        choices=["platform", "cross-platform"], required=False, allow_null=True
    )


class PasskeyRegisterSerializer(CredentialSerializer):
    name = serializers.CharField(max_length=64, help_text="How the passkey is listed (its device, say).")


class PasskeyLoginSerializer(CredentialSerializer):
    mfaToken = serializers.RegexField(
        s.TOKEN_PATTERN, max_length=128, required=False, help_text="After a password: the login's `mfaToken`."
    )


class PasskeyLoginOptionsSerializer(s.StrictSerializer):
    slug = serializers.CharField(
        max_length=254, required=False, allow_blank=True, help_text="Empty: a discoverable credential is used."
    )


class PasskeyRenameSerializer(s.StrictSerializer):
    name = serializers.CharField(max_length=64)


PasskeySerializer = serializer_of(PasskeyInfo, "PasskeySerializer")


class WebAuthnOptionsSerializer(serializers.Serializer):
    """PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON (WebAuthn Level 3): for the browser's
    `PublicKeyCredential.parseCreationOptionsFromJSON()` / `parseRequestOptionsFromJSON()`."""

    challenge = serializers.CharField()
    timeout = serializers.IntegerField()


def _forward_credential(call: Call, subject: Contract[Any], *outside: str) -> Any:
    # The credential goes on under its own key, so its property names can never collide with the route's.
    credential = {key: value for key, value in call.body.items() if key not in outside}
    extra = {key: call.body[key] for key in outside if key in call.body}
    return call.forward(subject, {"credential": credential, **extra})


def register_verify(call: Call) -> Any:
    return _forward_credential(call, pk.REGISTER_VERIFY, "name")


def login_verify(call: Call) -> Any:
    return _forward_credential(call, pk.LOGIN_VERIFY, "mfaToken")


def login_options(call: Call) -> Any:
    slug = call.body.get("slug", "").strip()
    return call.forward(pk.LOGIN_OPTIONS, {"slug": slug} if slug else {})


def passkeys_page(request: HttpRequest) -> HttpResponse:
    """The sign-in and second factors page a person uses: password login (finished with the authenticator app's
    code, a recovery code or a passkey when the account has a second factor), passwordless passkey login, the
    authenticator app's setup with its recovery codes shown once, passkey registration and list, logout."""
    context = {"config": {"csrfCookie": csrf_cookie_name(), "csrfHeader": CSRF_HEADER}}
    response = render(request, "gateway_api/passkeys.html", context)
    response["Cache-Control"] = "no-store"
    return response


ROUTES = [
    Route(
        "POST",
        "api/auth/passkeys/register/options",
        "Options to create a passkey",
        pk.REGISTER_OPTIONS,
        access=BEARER,
        reply=WebAuthnOptionsSerializer,
        errors=(400, 401, 403),
        tags=("passkeys",),
        description="WebAuthn creation options; the challenge is good once, for a few minutes.",
    ),
    Route(
        "POST",
        "api/auth/passkeys/register/verify",
        "Register a passkey",
        respond=register_verify,
        access=BEARER,
        body=PasskeyRegisterSerializer,
        reply=PasskeySerializer,
        status=201,
        errors=(400, 401, 403, 409),
        tags=("passkeys",),
        description="The browser's new credential (`toJSON()`) and a `name`. The user is mailed.",
    ),
    Route(
        "GET",
        "api/auth/passkeys",
        "The caller's passkeys",
        pk.LIST,
        access=BEARER,
        errors=(401,),
        name="passkeys",
        title="Passkey List",
        tags=("passkeys",),
    ),
    Route(
        "PATCH",
        f"api/auth/passkeys/{PASSKEY_ID}",
        "Rename a passkey",
        pk.RENAME,
        access=BEARER,
        args=(PASSKEY_ID,),
        body=PasskeyRenameSerializer,
        errors=(400, 401, 403, 404),
        name="passkey",
        title="Passkey Detail",
        tags=("passkeys",),
    ),
    Route(
        "DELETE",
        f"api/auth/passkeys/{PASSKEY_ID}",
        "Remove a passkey",
        pk.DELETE,
        access=BEARER,
        args=(PASSKEY_ID,),
        status=204,
        errors=(400, 401, 403, 404),
        name="passkey",
        title="Passkey Detail",
        tags=("passkeys",),
        description="It logs nobody in from now on. The user is mailed.",
    ),
    Route(
        "POST",
        "api/login/passkey/options",
        "Options to log in with a passkey",
        respond=login_options,
        body=PasskeyLoginOptionsSerializer,
        reply=WebAuthnOptionsSerializer,
        throttle="passkey-options",
        errors=(400, 429),
        tags=("identity",),
        description="With a `slug`, that account's passkeys (an unknown account gets options just as plausible); "
        "without, none listed, for a discoverable credential.",
    ),
    Route(
        "POST",
        "api/login/passkey/verify",
        "Log in with a passkey",
        respond=login_verify,
        body=PasskeyLoginSerializer,
        reply=s.AccessTokenSerializer,
        sets_tokens=True,
        throttle="login",
        throttle_account="rawId",
        errors=(400, 401, 429),
        tags=("identity",),
        description="The browser's assertion (`toJSON()`). Alone it needs a user-verified passkey (`amr` "
        '["hwk"]); with the `mfaToken` of a password login it is the second factor (`amr` ["pwd", "hwk"]). '
        "Answers and cookies as the password login.",
    ),
]
