"""Routes of the public API (SPEC §2), the JWKS proxy and the OpenAPI document.

The routes' patterns follow the route table (gateway/api/routing.py): one view per path, rebuilt in place when
the table changes, so a route registered after start-up (a test's) is served, documented and reversible.
"""

from django.urls import URLPattern, URLResolver, clear_url_caches, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from gateway.api.passkeys import passkeys_page
from gateway.api.routing import table
from gateway.api.views import view_for

DOCUMENT: list[URLPattern | URLResolver] = [
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves the docs UI's start-up script as a request of its own (?script): no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    # A page a person uses to log in and manage passkeys (beside the JSON list at api/auth/passkeys).
    path("api/auth/passkeys/", passkeys_page, name="passkeys-page"),
]

urlpatterns: list[URLPattern | URLResolver] = []


def _follow_table() -> None:
    patterns = [
        path(route_path, view_for(routes).as_view(), name=next((r.name for r in routes if r.name), None))
        for route_path, routes in table.by_path().items()
    ]
    urlpatterns[:] = [*patterns, *DOCUMENT]
    clear_url_caches()


table.subscribe(_follow_table)
