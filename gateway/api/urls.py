"""Routes of the public API (SPEC §2), the JWKS proxy and the OpenAPI document."""

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from gateway.api import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/signup", views.SignupView.as_view(), name="signup"),
    path("api/verify-account", views.VerifyAccountView.as_view(), name="verify-account"),
    path("api/resend-verification", views.ResendVerificationView.as_view(), name="resend-verification"),
    path("api/login", views.LoginView.as_view(), name="login"),
    path("api/recover-credentials", views.RecoverCredentialsView.as_view(), name="recover-credentials"),
    path("api/reset-password", views.ResetPasswordView.as_view(), name="reset-password"),
    path("api/auth/revalidate-credentials", views.RevalidateCredentialsView.as_view(), name="revalidate-credentials"),
    path("api/auth/logout", views.LogoutView.as_view(), name="logout"),
    path("api/auth/sessions", views.SessionListView.as_view(), name="sessions"),
    path("api/auth/sessions/<str:sid>", views.SessionDetailView.as_view(), name="session"),
    path("api/auth/deny-access", views.DenyAccessView.as_view(), name="deny-access"),
    path("api/user", views.UserCollectionView.as_view(), name="users"),
    # Before api/user/<id>: "deactivate" is a segment here, never an id.
    path("api/user/deactivate/<str:user_id>", views.UserDeactivateView.as_view(), name="user-deactivate"),
    path("api/user/<str:user_id>", views.UserDetailView.as_view(), name="user"),
    path("api/admin/log-level", views.LogLevelView.as_view(), name="log-level"),
    path("api/seed", views.SeedView.as_view(), name="seed"),
    path(".well-known/jwks.json", views.JwksView.as_view(), name="jwks"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves the docs UI's start-up script as a request of its own (?script): no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
]
