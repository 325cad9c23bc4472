"""HTTP of the accounts app: the public JSON Web Key Set."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from auth_service.accounts.services.signing_keys import jwks_get

JWKS_MAX_AGE_SECONDS = 300


@require_GET
def jwks_view(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(jwks_get())
    response["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    return response
