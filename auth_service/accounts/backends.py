"""The auth service's Django authentication backend: admin console logins go through the login service."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from auth_service.accounts.models import User
from auth_service.accounts.services import login


class AdminLoginBackend(ModelBackend):
    """ModelBackend (sessions, active check) whose password check is `admin_authenticate`: throttled and logged, and
    with the second factor's `code` (accounts/forms.py) for an account that has one."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        code: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None or password is None:
            return None
        ip = str(request.META.get("REMOTE_ADDR") or "") if request is not None else ""
        return login.admin_authenticate(email=username, password=password, ip=ip or None, code=code)
