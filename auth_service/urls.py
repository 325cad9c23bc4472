"""Auth service HTTP: JWKS, health and the Django admin only; everything else is served over NATS."""

from django.contrib import admin
from django.urls import include, path

from auth_service.accounts.forms import ConsoleLoginForm
from auth_service.accounts.views import jwks_view

# Which service's admin this is, in its header and the browser's title ("Django administration" says neither).
admin.site.site_header = admin.site.site_title = "authmesh: identity"
# Its login asks an account with a second factor for the code too.
admin.site.login_form = ConsoleLoginForm
admin.site.login_template = "accounts/console_login.html"

urlpatterns = [
    path("", include("common.api.urls")),
    path(".well-known/jwks.json", jwks_view, name="jwks"),
    path("admin/", admin.site.urls),
]

handler404 = "common.api.exceptions.not_found_view"
handler500 = "common.api.exceptions.server_error_view"
