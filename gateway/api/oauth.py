"""The OAuth 2.0 token endpoint (client credentials, RFC 6749 §4.4): `POST /api/oauth/token`.

The gateway reads the form-encoded request and the client's credentials (HTTP Basic, or `client_id` and
`client_secret` in the body: one method only, §2.3.1), checks the grant type, and forwards to the auth service,
which authenticates the client and issues the token. Being an OAuth endpoint, it answers RFC 6749's shapes rather
than our envelope: §5.1 on success, §5.2 `{"error", "error_description"}` on failure (401 and a Basic challenge
for invalid_client), never cached.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote_plus

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from common.contracts import oauth
from common.contracts.errors import ServiceError
from gateway.api.authentication import authorization_header
from gateway.api.routing import Call

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC_CHALLENGE = 'Basic realm="api"'
# RFC 6749 §5.2: error_description is printable ASCII without '"' and '\'.
_NOT_IN_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


class TokenRequestSerializer(serializers.Serializer):
    """Unknown parameters are ignored, as §3.2 asks of an authorization server."""

    grant_type = serializers.CharField(max_length=64)
    scope = serializers.CharField(required=False, max_length=1024)
    client_id = serializers.CharField(required=False, max_length=128)
    client_secret = serializers.CharField(required=False, max_length=256)


class TokenReplySerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField(help_text="Always `Bearer`.")
    expires_in = serializers.IntegerField(help_text="Seconds.")
    scope = serializers.CharField(help_text="The granted scopes, space-separated.")


class TokenErrorSerializer(serializers.Serializer):
    error = serializers.ChoiceField(
        choices=[*oauth.ERRORS, "slow_down", "temporarily_unavailable", "server_error"],
        help_text="RFC 6749 §5.2 (401 with a Basic challenge for invalid_client); slow_down when throttled.",
    )
    error_description = serializers.CharField()


def _error(code: str, description: str) -> ServiceError:
    return ServiceError(description, status=401 if code == oauth.INVALID_CLIENT else 400, code=code)


def _basic_credentials(request: Any) -> tuple[str, str] | None:
    """The client's id and secret from an `Authorization: Basic` header (each form-url-decoded, §2.3.1)."""
    parts = authorization_header(request).split()
    if not parts:
        return None
    if parts[0].lower() != b"basic" or len(parts) != 2:
        raise _error(oauth.INVALID_CLIENT, "Unsupported client authentication")
    try:
        decoded = base64.b64decode(parts[1], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _error(oauth.INVALID_CLIENT, "Malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id or not secret:
        raise _error(oauth.INVALID_CLIENT, "Malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def client_id_of(request: Request) -> str:
    """The client a token request is for, as far as it can be told (the per-client throttle's identity)."""
    try:
        basic = _basic_credentials(request)
    except ServiceError:
        return ""
    if basic is not None:
        return basic[0]
    data = request.data
    value = data.get("client_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def _credentials(request: Any, body: dict[str, Any]) -> tuple[str, str]:
    basic = _basic_credentials(request)
    body_id, body_secret = body.get("client_id"), body.get("client_secret")
    if basic is not None:
        if body_secret is not None or (body_id is not None and body_id != basic[0]):
            raise _error(oauth.INVALID_REQUEST, "Use one client authentication method, not two")
        return basic
    if body_id is None or body_secret is None:
        raise _error(oauth.INVALID_CLIENT, "Client authentication required")
    return body_id, body_secret


def token(call: Call) -> Response:
    request = call.request
    data: Any = getattr(request, "data", {})
    repeated = sorted(name for name in data if isinstance(data, QueryDict) and len(data.getlist(name)) > 1)
    if repeated:
        raise _error(oauth.INVALID_REQUEST, f"Repeated parameter: {', '.join(repeated)}")
    client_id, secret = _credentials(request, call.body)
    if call.body["grant_type"] != oauth.GRANT_CLIENT_CREDENTIALS:
        raise _error(oauth.UNSUPPORTED_GRANT_TYPE, "Only the client_credentials grant is supported")
    forwarded = {"clientId": client_id, "clientSecret": secret}
    if "scope" in call.body:
        forwarded["scope"] = call.body["scope"]
    reply = call.forward(oauth.TOKEN, forwarded)
    if not isinstance(reply, dict) or not isinstance(reply.get("accessToken"), str):
        raise ServiceError("Malformed reply from service", status=502, code="bad_reply")
    body = {
        "access_token": reply["accessToken"],
        "token_type": "Bearer",
        "expires_in": int(reply["expiresIn"]),
        "scope": str(reply["scope"]),
    }
    return Response(body, headers=NO_STORE)


def _description(message: Any) -> str:
    text = "; ".join(str(part) for part in message) if isinstance(message, list) else str(message or "")
    return _NOT_IN_DESCRIPTION.sub(" ", text)[:500]


def error_response(envelope: Response) -> Response:
    """The §5.2 answer for the error envelope the route would have answered."""
    data = envelope.data if isinstance(envelope.data, dict) else {}
    status, code = envelope.status_code, data.get("code")
    headers = dict(NO_STORE)
    if code in oauth.ERRORS:
        error = str(code)
    elif status == 429:
        error = "slow_down"
    elif status in (503, 504):
        error = "temporarily_unavailable"
    elif status >= 500:
        error = "server_error"
    else:
        # Unparsable or wrongly typed bodies, missing parameters, oversize: all a malformed request.
        error, status = oauth.INVALID_REQUEST, 400
    if error == oauth.INVALID_CLIENT:
        status = 401
        headers["WWW-Authenticate"] = BASIC_CHALLENGE
    if envelope.has_header("Retry-After"):
        headers["Retry-After"] = envelope["Retry-After"]
    body = {"error": error, "error_description": _description(data.get("message"))}
    response = Response(body, status=status, headers=headers)
    response.exception = True
    return response
