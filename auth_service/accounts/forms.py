"""The auth admin's login form: e-mail, password and, for an account with a second factor, its code."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import authenticate
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables


class ConsoleLoginForm(AdminAuthenticationForm):
    """Django's admin login form plus `code`, which the backend (AdminLoginBackend) checks when the account has a
    second factor (SPEC §2b: once a user has one, a password alone no longer logs in)."""

    code = forms.CharField(
        label="Authenticator or recovery code",
        required=False,
        max_length=32,
        strip=True,
        help_text="Only for an account with a second factor.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    @method_decorator(sensitive_variables())
    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            code = self.cleaned_data.get("code") or None
            self.user_cache = authenticate(self.request, username=username, password=password, code=code)
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data
