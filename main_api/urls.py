"""main_api HTTP: health and the Django admin only; its data is served over NATS."""

from django.contrib import admin
from django.urls import include, path

# Which service's admin this is, in its header and the browser's title ("Django administration" says neither).
admin.site.site_header = admin.site.site_title = "authmesh: main API"

urlpatterns = [
    path("", include("common.api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "common.api.exceptions.not_found_view"
handler500 = "common.api.exceptions.server_error_view"
