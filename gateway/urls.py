"""Gateway URLs: the public API under /api, health, and the JWKS proxy."""

from django.urls import include, path, re_path

from common.api.exceptions import unknown_route_view

urlpatterns = [
    path("", include("common.api.urls")),
    path("", include("gateway.api.urls")),
    # Last: any other path is the 404 envelope, under DEBUG too (its technical 404 page would be HTML).
    re_path("", unknown_route_view, name="unknown-route"),
]

# Django's own errors too (a Host not in ALLOWED_HOSTS is a 400 raised before any view) leave in the envelope.
handler400 = "common.api.exceptions.bad_request_view"
handler403 = "common.api.exceptions.permission_denied_view"
handler404 = "common.api.exceptions.not_found_view"
handler500 = "common.api.exceptions.server_error_view"
