"""Coarse role checks (guest < user < admin < sys_admin); the auth service re-checks writes against current state."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from common.contracts.roles import ADMINS, NOT_GUEST, SYS_ADMINS
from gateway.api.authentication import GatewayUser
from gateway.api.client_tokens import client_admitted

FORBIDDEN = "Forbidden resource"


def caller(request: Request) -> GatewayUser | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, GatewayUser) else None


class IsAuthenticated(BasePermission):
    """A verified access token with a live session; without one DRF answers 401 (not 403). A service account's
    token passes only on a route naming one of its scopes (and every other permission of that route then too)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return caller(request) is not None or client_admitted(request, view)


class HasAnyRole(BasePermission):
    """The caller holds at least one of `roles`."""

    roles: ClassVar[frozenset[str]] = frozenset()
    message = FORBIDDEN
    code = "forbidden"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = caller(request)
        return (user is not None and not self.roles.isdisjoint(user.roles)) or client_admitted(request, view)


class IsAdmin(HasAnyRole):
    roles = ADMINS


class IsSysAdmin(HasAnyRole):
    roles = SYS_ADMINS


class NotGuest(HasAnyRole):
    """Guests read only: unsafe methods need a role above guest."""

    roles = NOT_GUEST

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or super().has_permission(request, view)
