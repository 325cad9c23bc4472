"""Gateway URLs: the public API under /api, health, and the JWKS proxy."""

from django.urls import include, path

urlpatterns = [
    path("", include("common.api.urls")),
    path("", include("gateway.api.urls")),
]

handler404 = "common.api.exceptions.not_found_view"
handler500 = "common.api.exceptions.server_error_view"
