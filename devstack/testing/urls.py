"""URLs for testing common: health endpoints only."""

from django.urls import include, path

urlpatterns = [path("", include("common.api.urls"))]
handler404 = "common.api.exceptions.not_found_view"
