"""The public routes (SPEC §2): each validates shape, forwards one NATS request and renders the reply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from common.contracts import subjects
from common.contracts.errors import ServiceError
from gateway.api import ops, schema
from gateway.api import serializers as s
from gateway.api.cookies import clear_auth_cookies, read_refresh_cookie, set_access_cookie, set_auth_cookies
from gateway.api.csrf import CsrfProtected
from gateway.api.forwarding import agent_of, forward
from gateway.api.jwks import get_jwks
from gateway.api.permissions import IsAdmin, IsAuthenticated, IsSysAdmin, NotGuest
from gateway.api.renderers import renders_html
from gateway.api.throttles import IdentityThrottle

Permissions = list[type[BasePermission]]
EMPTY = OpenApiResponse(description="Empty body.")
USER_ID = OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The user's id.")
SESSION_ID = OpenApiParameter(
    "sid", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=s.SESSION_ID_PATTERN.pattern, description="A session id."
)


# --- bases ---------------------------------------------------------------------------------------------------------


class GatewayView(APIView):
    """Per-method permissions and no caching of API answers."""

    permission_classes_by_method: ClassVar[dict[str, Permissions]] = {}
    # The body of each method that takes one: the browsable API shows its fields as the form's JSON template.
    # (The views validate with the same serializers; the OpenAPI document names them in extend_schema.)
    form_serializers: ClassVar[dict[str, type[Serializer]]] = {}

    @classmethod
    def permission_classes_for(cls, method: str) -> Sequence[Any]:
        return cls.permission_classes_by_method.get(method, cls.permission_classes)

    def get_permissions(self) -> Sequence[Any]:
        return [permission() for permission in self.permission_classes_for(self.request.method or "")]

    def get_serializer(self, *args: Any, **kwargs: Any) -> Serializer:
        """For the browsable API only: an unbound serializer of the current method's body (none: `{}`)."""
        kwargs.pop("instance", None)
        return self.form_serializers.get(self.request.method or "", s.EmptySerializer)(*args, **kwargs)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        default_cache_control(response)
        return response


def default_cache_control(response: HttpResponseBase) -> None:
    """API answers are not cached unless the view says otherwise."""
    if not response.has_header("Cache-Control"):
        response["Cache-Control"] = "no-store"


class PublicView(GatewayView):
    """No credentials needed; a stale Authorization header is ignored rather than answered with 401."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = [IdentityThrottle]
    throttle_scope: ClassVar[str | None] = None
    throttle_account_field: ClassVar[str | None] = None


class BearerView(GatewayView):
    """An access token with a live session; unsafe methods also need the CSRF header."""

    permission_classes = [IsAuthenticated, CsrfProtected]


class RefreshCookieRequired(BasePermission):
    """The signed refresh cookie is present and intact (401 otherwise, before CSRF is looked at)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        read_refresh_cookie(request)
        return True


class RefreshCookieView(GatewayView):
    """Authenticated by the refresh cookie (+ CSRF); a refused refresh token also clears the cookies."""

    authentication_classes = []
    permission_classes = [RefreshCookieRequired, CsrfProtected]

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if response.status_code == 401:
            clear_auth_cookies(response)
        return response


def token_response(request: Request, reply: Any) -> Response:
    """Login and refresh answer the access token in the body and the refresh token only as a cookie.

    A person using the browsable API (who asked for HTML) also gets the access token as an HttpOnly cookie, so
    the pages that follow are authenticated without pasting a token anywhere.
    """
    if not isinstance(reply, dict) or not reply.get("accessToken") or not reply.get("refreshToken"):
        raise ServiceError("Malformed reply from service", status=502, code="bad_reply")
    response = Response({"accessToken": reply["accessToken"]})
    set_auth_cookies(response, refresh_token=str(reply["refreshToken"]), expires_at=reply.get("refreshExpiresAt"))
    if settings.BROWSABLE_API and renders_html(request):
        set_access_cookie(response, access_token=str(reply["accessToken"]))
    return response


def cleared(response: Response) -> Response:
    clear_auth_cookies(response)
    return response


# --- public identity flows -----------------------------------------------------------------------------------------


class SignupView(PublicView):
    form_serializers = {"POST": s.SignupSerializer}
    throttle_scope = "signup"
    throttle_account_field = "email"

    @extend_schema(
        tags=["identity"],
        summary="Sign up",
        description="Role `user`, unverified; a 6-digit code is mailed. A registered e-mail also answers 200.",
        request=s.SignupSerializer,
        responses={200: EMPTY, **schema.errors(400, 409, 429)},
        auth=schema.PUBLIC,
    )
    def post(self, request: Request) -> Response:
        forward(request, subjects.AUTH_SIGNUP, s.validated(s.SignupSerializer, request.data))
        return Response(status=200)


class VerifyAccountView(PublicView):
    form_serializers = {"POST": s.VerifyAccountSerializer}
    throttle_scope = "verify-account"
    throttle_account_field = "email"

    @extend_schema(
        tags=["identity"],
        summary="Verify an account with the mailed code",
        request=s.VerifyAccountSerializer,
        responses={200: EMPTY, **schema.errors(400, 429)},
        auth=schema.PUBLIC,
    )
    def post(self, request: Request) -> Response:
        forward(request, subjects.AUTH_VERIFY_ACCOUNT, s.validated(s.VerifyAccountSerializer, request.data))
        return Response(status=200)


class ResendVerificationView(PublicView):
    form_serializers = {"POST": s.EmailSerializer}
    throttle_scope = "resend-verification"
    throttle_account_field = "email"

    @extend_schema(
        tags=["identity"],
        summary="Mail a new verification code",
        description="Always 200, whether or not the account exists.",
        request=s.EmailSerializer,
        responses={200: EMPTY, **schema.errors(400, 429)},
        auth=schema.PUBLIC,
    )
    def post(self, request: Request) -> Response:
        forward(request, subjects.AUTH_RESEND_VERIFICATION, s.validated(s.EmailSerializer, request.data))
        return Response(status=200)


class LoginView(PublicView):
    form_serializers = {"POST": s.LoginSerializer}
    throttle_scope = "login"
    throttle_account_field = "slug"

    @extend_schema(
        tags=["identity"],
        summary="Log in",
        description="Sets the refresh cookie `Authentication` (HttpOnly, path /api/auth) and the CSRF cookie.",
        request=s.LoginSerializer,
        responses={200: s.AccessTokenSerializer, **schema.errors(400, 401, 429)},
        auth=schema.PUBLIC,
    )
    def post(self, request: Request) -> Response:
        return token_response(
            request, forward(request, subjects.AUTH_LOGIN, s.validated(s.LoginSerializer, request.data))
        )


class RecoverCredentialsView(PublicView):
    form_serializers = {"POST": s.SlugSerializer}
    throttle_scope = "recover-credentials"
    throttle_account_field = "slug"

    @extend_schema(
        tags=["identity"],
        summary="Mail a password recovery token",
        description="Always 200 with the same body; clears both cookies.",
        request=s.SlugSerializer,
        responses={200: EMPTY, **schema.errors(400, 429)},
        auth=schema.PUBLIC,
    )
    def post(self, request: Request) -> Response:
        forward(request, subjects.AUTH_RECOVER, s.validated(s.SlugSerializer, request.data))
        return cleared(Response(status=200))


class ResetPasswordView(PublicView):
    form_serializers = {"POST": s.ResetPasswordSerializer}
    throttle_scope = "reset-password"
    throttle_account_field = "recoveryToken"

    @extend_schema(
        tags=["identity"],
        summary="Set a new password with a recovery token",
        description="Ends every session of the user; clears both cookies.",
        request=s.ResetPasswordSerializer,
        responses={200: EMPTY, **schema.errors(400, 429)},
        auth=schema.PUBLIC,
    )
    def post(self, request: Request) -> Response:
        forward(request, subjects.AUTH_RESET_PASSWORD, s.validated(s.ResetPasswordSerializer, request.data))
        return cleared(Response(status=200))


# --- refresh-cookie routes -----------------------------------------------------------------------------------------


class RevalidateCredentialsView(RefreshCookieView):
    @extend_schema(
        tags=["session"],
        summary="Refresh the access token",
        description="Rotates the refresh token (new refresh and CSRF cookies). A reused token ends its session family.",
        request=None,
        responses={200: s.AccessTokenSerializer, **schema.errors(400, 401, 403)},
        auth=schema.REFRESH_AND_CSRF,
    )
    def post(self, request: Request) -> Response:
        s.validated(s.EmptySerializer, request.data)
        reply = forward(request, subjects.AUTH_REVALIDATE, {"refreshToken": read_refresh_cookie(request)})
        return token_response(request, reply)


class LogoutView(RefreshCookieView):
    @extend_schema(
        tags=["session"],
        summary="Log out",
        description="Ends this session (`?all=true`: every session of the user) and clears the cookies.",
        parameters=[s.LogoutQuerySerializer],
        request=None,
        responses={200: EMPTY, **schema.errors(400, 401, 403)},
        auth=schema.REFRESH_AND_CSRF,
    )
    def post(self, request: Request) -> Response:
        query = s.validated(s.LogoutQuerySerializer, request.query_params.dict())
        s.validated(s.EmptySerializer, request.data)
        forward(request, subjects.AUTH_LOGOUT, {"refreshToken": read_refresh_cookie(request), "all": query["all"]})
        return cleared(Response(status=200))


# --- bearer routes -------------------------------------------------------------------------------------------------

# The bodies of the hot read routes, shared with their lean path (gateway/api/fastlane.py); `request` is DRF's
# Request here and Django's HttpRequest there (both carry GET, META and the authenticated `user`).


def users_page(request: HttpRequest | Request) -> Any:
    query = s.query_validated(s.UserListQuerySerializer, request.GET.dict())
    return forward(request, subjects.USER_FIND_ALL, query)


def user_by_id(request: HttpRequest | Request, user_id: str) -> Any:
    return forward(request, subjects.USER_FIND_ONE, {"id": s.path_uuid(user_id)})


JWKS_CACHE_CONTROL = "public, max-age=300"


def jwks_response() -> Response:
    return Response(get_jwks().document(), headers={"Cache-Control": JWKS_CACHE_CONTROL})


class SessionListView(BearerView):
    @extend_schema(
        tags=["session"],
        summary="The caller's sessions",
        responses={200: s.SessionSerializer(many=True), **schema.errors(401)},
        auth=schema.BEARER_ONLY,
    )
    def get(self, request: Request) -> Response:
        return Response(forward(request, subjects.AUTH_SESSIONS_LIST))


class SessionDetailView(BearerView):
    @extend_schema(
        tags=["session"],
        summary="End one of the caller's sessions",
        parameters=[SESSION_ID],
        responses={204: EMPTY, **schema.errors(400, 401, 403, 404)},
        auth=schema.BEARER_AND_CSRF,
    )
    def delete(self, request: Request, sid: str) -> Response:
        forward(request, subjects.AUTH_SESSIONS_END, {"sessionId": s.path_session_id(sid)})
        return Response(status=204)


class DenyAccessView(BearerView):
    permission_classes = [IsAuthenticated, CsrfProtected, IsSysAdmin]
    form_serializers = {"POST": s.DenyAccessSerializer}

    @extend_schema(
        tags=["users"],
        summary="Deny a user access",
        description="Deactivates the user and ends all its sessions; its access tokens stop working at once.",
        request=s.DenyAccessSerializer,
        responses={200: EMPTY, **schema.errors(400, 401, 403, 404)},
        auth=schema.BEARER_AND_CSRF,
    )
    def post(self, request: Request) -> Response:
        data = s.validated(s.DenyAccessSerializer, request.data)
        forward(request, subjects.AUTH_DENY_ACCESS, {"userId": str(data["userId"])})
        return Response(status=200)


class UserCollectionView(BearerView):
    permission_classes_by_method = {"POST": [IsAuthenticated, CsrfProtected, IsAdmin]}
    form_serializers = {"POST": s.UserCreateSerializer}

    @extend_schema(
        tags=["users"],
        summary="List users",
        operation_id="users_list",
        description="Every user (inactive and unverified too) unless filtered, oldest first.",
        parameters=[s.UserListQuerySerializer],
        responses={200: s.UserPageSerializer, **schema.errors(400, 401)},
        auth=schema.BEARER_ONLY,
    )
    def get(self, request: Request) -> Response:
        return Response(users_page(request))

    @extend_schema(
        tags=["users"],
        summary="Create a user",
        description="Admins and sys_admins; unverified, a code is mailed. Admins cannot grant sys_admin.",
        request=s.UserCreateSerializer,
        responses={201: s.UserSerializer, **schema.errors(400, 401, 403, 409)},
        auth=schema.BEARER_AND_CSRF,
    )
    def post(self, request: Request) -> Response:
        user = forward(request, subjects.AUTH_USER_CREATE, s.validated(s.UserCreateSerializer, request.data))
        return Response(user, status=201)


class UserDetailView(BearerView):
    permission_classes_by_method = {
        "PATCH": [IsAuthenticated, CsrfProtected, NotGuest],
        "DELETE": [IsAuthenticated, CsrfProtected, IsSysAdmin],
    }
    form_serializers = {"PATCH": s.UserUpdateSerializer}

    @extend_schema(
        tags=["users"],
        summary="One user",
        parameters=[USER_ID],
        responses={200: s.UserSerializer, **schema.errors(400, 401, 404)},
        auth=schema.BEARER_ONLY,
    )
    def get(self, request: Request, user_id: str) -> Response:
        return Response(user_by_id(request, user_id))

    @extend_schema(
        tags=["users"],
        summary="Update a user",
        description="Permission matrix in the auth service; a password change needs `oldPassword`.",
        parameters=[USER_ID],
        request=s.UserUpdateSerializer,
        responses={200: s.UserSerializer, **schema.errors(400, 401, 403, 404, 409)},
        auth=schema.BEARER_AND_CSRF,
    )
    def patch(self, request: Request, user_id: str) -> Response:
        changes = s.validated(s.UserUpdateSerializer, request.data)
        return Response(forward(request, subjects.AUTH_USER_UPDATE, {"id": s.path_uuid(user_id), "changes": changes}))

    @extend_schema(
        tags=["users"],
        summary="Delete a user",
        description="sys_admin only; ends the user's sessions.",
        parameters=[USER_ID],
        responses={204: EMPTY, **schema.errors(400, 401, 403, 404)},
        auth=schema.BEARER_AND_CSRF,
    )
    def delete(self, request: Request, user_id: str) -> Response:
        forward(request, subjects.AUTH_USER_DELETE, {"id": s.path_uuid(user_id)})
        return Response(status=204)


class UserDeactivateView(BearerView):
    permission_classes = [IsAuthenticated, CsrfProtected, NotGuest]

    @extend_schema(
        tags=["users"],
        summary="Deactivate a user",
        description="Self, or as the permission matrix allows; ends the user's sessions.",
        parameters=[USER_ID],
        request=None,
        responses={200: s.UserSerializer, **schema.errors(400, 401, 403, 404)},
        auth=schema.BEARER_AND_CSRF,
    )
    def patch(self, request: Request, user_id: str) -> Response:
        s.validated(s.EmptySerializer, request.data)
        return Response(forward(request, subjects.AUTH_USER_DEACTIVATE, {"id": s.path_uuid(user_id)}))


# --- operations ----------------------------------------------------------------------------------------------------


class LogLevelView(BearerView):
    permission_classes = [IsAuthenticated, CsrfProtected, IsSysAdmin]
    form_serializers = {"POST": s.LogLevelSerializer}

    @extend_schema(
        tags=["admin"],
        summary="A service's log level",
        parameters=[s.LogLevelQuerySerializer],
        responses={200: s.LogLevelReplySerializer, **schema.errors(400, 401, 403)},
        auth=schema.BEARER_ONLY,
    )
    def get(self, request: Request) -> Response:
        service = s.validated(s.LogLevelQuerySerializer, request.query_params.dict())["service"]
        if ops.is_local(service):
            return Response(ops.local_log_level())
        return Response(ops.log_level_reply(forward(request, subjects.log_level_get(service)), service))

    @extend_schema(
        tags=["admin"],
        summary="Set a service's log level",
        description="Applies to every running instance of the service.",
        request=s.LogLevelSerializer,
        responses={200: s.LogLevelReplySerializer, **schema.errors(400, 401, 403)},
        auth=schema.BEARER_AND_CSRF,
    )
    def post(self, request: Request) -> Response:
        data = s.validated(s.LogLevelSerializer, request.data)
        service, level = data["service"], data["level"]
        if ops.is_local(service):
            return Response(ops.broadcast_log_level(level, agent=agent_of(request)))
        # A request on the broadcast subject: every instance applies it, the first answer confirms it.
        reply = forward(request, subjects.log_level_set(service), {"level": level})
        return Response(ops.log_level_reply(reply, service))


class SeedView(PublicView):
    @extend_schema(
        tags=["admin"],
        summary="Seed every service (development only)",
        description="Idempotent and never destructive; 404 unless SEED_OVER_HTTP is on.",
        responses={200: s.SeedReplySerializer, **schema.errors(404)},
        auth=schema.PUBLIC,
    )
    def get(self, request: Request) -> Response:
        if not settings.SEED_OVER_HTTP:
            raise NotFound(f"Cannot GET {request.path}")
        for subject in (subjects.AUTH_SEED, subjects.MAIN_SEED):
            forward(request, subject, timeout=settings.SEED_TIMEOUT_SECONDS)
        return Response({"ok": True})


class JwksView(PublicView):
    @extend_schema(
        tags=["keys"],
        summary="The public signing keys (proxy of the auth service's JWKS)",
        responses={200: s.JwksSerializer, 503: schema.errors()[503]},
        auth=schema.PUBLIC,
    )
    def get(self, request: Request) -> Response:
        return jwks_response()
