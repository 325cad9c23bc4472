"""URL patterns every HTTP service exposes: liveness and readiness."""

from django.urls import path

from common.api.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
