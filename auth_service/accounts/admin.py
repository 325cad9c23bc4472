"""Django admin of the auth service: every write goes through the services (same events, same session ends)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import model_ngettext
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from auth_service.accounts import selectors
from auth_service.accounts.models import Role, SigningKey, User
from auth_service.accounts.policies import (
    ACTION_CREATE,
    ACTION_DELETE,
    can_write,
    normalize_email,
    profile_errors,
    sorted_roles,
)
from auth_service.accounts.services import mfa, registration, sessions, signing_keys, users
from common.admin import IsSetFilter, ReadOnlyAdmin
from common.contracts.errors import ServiceError
from common.contracts.roles import ADMINS, ROLES, SYS_ADMIN
from common.outbox.models import OutboxEvent

ROLE_CHOICES = [(role, role) for role in ROLES]


def _allowed(agent: Any, *, target: User | None, change: set[str], new_roles: list[str] | None = None) -> str | None:
    """The matrix's refusal message, or None when the admin user may make this change."""
    try:
        can_write(agent, target, change=change, new_roles=new_roles)
    except ServiceError as exc:
        return str(exc.message)
    return None


class UserChangeForm(forms.ModelForm):
    roles = forms.MultipleChoiceField(choices=ROLE_CHOICES, widget=forms.CheckboxSelectMultiple)
    agent: Any = None

    class Meta:
        model = User
        fields = ["name", "username", "email", "roles"]

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        changed = {field for field in self.changed_data if field in cleaned}
        roles = sorted_roles(cleaned["roles"]) if "roles" in cleaned else None
        for field, errors in profile_errors(
            name=cleaned.get("name"), username=cleaned.get("username"), email=cleaned.get("email"), roles=roles
        ).items():
            for error in errors:
                self.add_error(field, error)
        if changed and (refusal := _allowed(self.agent, target=self.instance, change=changed, new_roles=roles)):
            raise forms.ValidationError(refusal)
        return cleaned


class UserCreationForm(UserChangeForm):
    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label="Password (again)", strip=False, widget=forms.PasswordInput)

    def clean(self) -> dict[str, Any]:
        cleaned = forms.ModelForm.clean(self) or {}
        roles = sorted_roles(cleaned.get("roles") or [])
        if refusal := _allowed(self.agent, target=None, change={ACTION_CREATE}, new_roles=roles):
            raise forms.ValidationError(refusal)
        if cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ")
        email = cleaned.get("email")
        if email and selectors.email_taken(email):
            self.add_error("email", "Email already in use")
        return cleaned


class RolesForm(forms.Form):
    """The intermediate page of the "change roles" action: the roles every selected user will hold."""

    roles = forms.MultipleChoiceField(choices=ROLE_CHOICES, widget=forms.CheckboxSelectMultiple)


class RoleListFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return ROLE_CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(roles__contains=[value]) if value in ROLES else queryset


def _each_action(
    service: Any, verb: str, *, description: str
) -> Callable[[UserAdmin, HttpRequest, QuerySet[User]], None]:
    """An action of the user list that calls the API's own `service` for each selected user (`UserAdmin._each`)."""

    @admin.action(description=description, permissions=["change"])
    def action(model_admin: UserAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:
        model_admin._each(request, queryset, service, verb)

    return action


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    list_display = ["email", "username", "name", "role_list", "is_active", "is_verified", "created_at"]
    list_filter = [RoleListFilter, "is_active", "is_verified"]
    search_fields = ["email", "username", "name"]
    ordering = ["created_at", "id"]
    readonly_fields = ["id", "is_active", "is_verified", "second_factors", "version", "created_at", "updated_at"]
    actions = [
        "deactivate_users",
        "reactivate_users",
        "end_sessions",
        "change_roles",
        "resend_verification",
        "reset_second_factors",
    ]

    @admin.display(description="roles")
    def role_list(self, obj: User) -> str:
        return ", ".join(sorted_roles(obj.roles))

    @admin.display(description="second factors")
    def second_factors(self, obj: User) -> str:
        status = selectors.mfa_status_get(obj.pk)
        parts = [f"TOTP {'on' if status.totp else 'off'}", f"{status.recovery_codes_left} recovery code(s) left"]
        parts.append(f"{len(status.passkeys)} passkey(s)")
        return ", ".join(parts)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return ["name", "username", "email", "roles", "password1", "password2"]
        return ["name", "username", "email", "roles", *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = ["name", "username", "email", "roles"]
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"agent": request.user})

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        queryset = super().get_queryset(request)
        if SYS_ADMIN not in getattr(request.user, "roles", ()):
            # An admin sees and manages only the users the matrix lets it act on.
            queryset = queryset.exclude(roles__overlap=list(ADMINS))
        return queryset

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and _allowed(request.user, target=obj, change={ACTION_DELETE}):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {
                field: data[field] for field in form.changed_data if field in {"name", "username", "email", "roles"}
            }
            if changes:
                users.user_update(agent_id=str(request.user.pk), user_id=str(obj.pk), changes=changes)
            return
        created = users.user_create(
            agent_id=str(request.user.pk),
            name=data["name"],
            username=data["username"],
            email=data["email"],
            password=data["password1"],
            roles=data["roles"],
        )
        # The admin redirects and logs with this instance: make it the created row.
        obj.pk = created.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        users.user_delete(agent_id=str(request.user.pk), user_id=str(obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            self.delete_model(request, user)

    def _each(self, request: HttpRequest, queryset: QuerySet[User], service: Any, verb: str, **kwargs: Any) -> None:
        """Call the API's own `service(agent_id=, user_id=, **kwargs)` for each selected user, as the admin user."""
        agent_id = str(request.user.pk)
        done = 0
        for user in queryset:
            try:
                service(agent_id=agent_id, user_id=str(user.pk), **kwargs)
            except ServiceError as exc:
                self.message_user(request, f"{user.email}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} {model_ngettext(self.opts, done)}.", messages.SUCCESS)

    deactivate_users = _each_action(
        users.user_deactivate, "Deactivated", description="Deactivate (and end their sessions)"
    )
    reactivate_users = _each_action(users.user_reactivate, "Reactivated", description="Reactivate")
    end_sessions = _each_action(sessions.session_end_all, "Ended the sessions of", description="End all sessions")
    reset_second_factors = _each_action(
        mfa.mfa_reset, "Reset the factors of", description="Reset second factors (and end their sessions)"
    )

    @admin.action(description="Change roles…", permissions=["change"])
    def change_roles(self, request: HttpRequest, queryset: QuerySet[User]) -> TemplateResponse | None:
        """Ask for the new roles on an intermediate page, then apply them through the API's own service."""
        if "apply" in request.POST:
            form = RolesForm(request.POST)
            if form.is_valid():
                roles = form.cleaned_data["roles"]
                self._each(request, queryset, users.user_update, "Changed the roles of", changes={"roles": roles})
                return None  # back to the list, with the messages
        else:
            shared = {tuple(sorted_roles(user.roles)) for user in queryset}
            form = RolesForm(initial={"roles": list(shared.pop()) if len(shared) == 1 else []})
        context = {
            **self.admin_site.each_context(request),
            "title": "Change roles",
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/accounts/user/change_roles.html", context)

    @admin.action(description="Resend the verification code", permissions=["change"])
    def resend_verification(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        sent = 0
        for user in queryset:
            if registration.verification_resend(email=user.email):
                sent += 1
            else:
                self.message_user(request, f"{user.email}: not sent (already verified or inactive)", messages.WARNING)
        if sent:
            self.message_user(
                request, f"Sent a new code to {sent} {model_ngettext(self.opts, sent)}.", messages.SUCCESS
            )


@admin.register(Role)
class RoleAdmin(ReadOnlyAdmin):
    list_display = ["name", "rank", "description"]


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ["kid", "state", "created_at", "activated_at", "retired_at"]
    list_filter = ["state"]
    # The private key never leaves the database through the admin.
    fields = ("kid", "state", "public_jwk", "created_at", "activated_at", "retired_at")
    readonly_fields = ("kid", "state", "public_jwk", "created_at", "activated_at", "retired_at")
    actions = ["rotate"]

    @admin.action(description="Rotate the signing keys now (select any key)")
    def rotate(self, request: HttpRequest, queryset: QuerySet[SigningKey]) -> None:
        key = signing_keys.signing_key_rotate(agent_id=str(request.user.pk))
        self.message_user(request, f"Rotated: {key.kid} is now active.", messages.SUCCESS)


class PublishedFilter(IsSetFilter):
    title = "published"
    parameter_name = "published"
    field = "published_at"
    unset = ("no", "pending")
    is_set = ("yes", "published")


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "aggregate_id", "created_at", "published_at", "attempts"]
    list_filter = [PublishedFilter, "event_type"]
    search_fields = ["aggregate_id", "event_id"]
    readonly_fields = [
        "id",
        "event_id",
        "aggregate_id",
        "event_type",
        "payload",
        "created_at",
        "published_at",
        "attempts",
        "last_error",
        "next_attempt_at",
    ]
