"""Identity records of the auth service: users, roles, verification codes, recovery tokens, signing keys and second
factors (TOTP devices, recovery codes, passkeys)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac

from auth_service.accounts.sessions import credential_epoch_get
from common.contracts.roles import ADMIN, ADMINS, ROLES, SYS_ADMIN, USER
from common.fields import CodeChoicesField

# What an `admin` may do in the Django admin; a `sys_admin` may do everything.
ADMIN_PERMISSIONS = frozenset({"accounts.view_user", "accounts.change_user"})


class UserManager(BaseUserManager["User"]):
    """Creation goes through the service layer so that every new user also gets its outbox event."""

    # The service that creates a user with its event (`user_provision`). The services import this module, so it
    # cannot import them: AccountsConfig.ready() plugs the service in once the app registry is loaded.
    provision: ClassVar[Callable[..., User] | None] = None

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=(username or "").strip().lower())

    def create_user(self, email: str, password: str | None = None, *, username: str, name: str, **extra: Any) -> User:
        # Django's createsuperuser and admin tooling call the manager; routing them through the service keeps one
        # way to create an identity (and its event).
        provision = type(self).provision
        if provision is None:
            raise ImproperlyConfigured("UserManager.provision is set by AccountsConfig.ready()")
        return provision(
            email=email,
            username=username,
            name=name,
            password=password,
            roles=list(extra.pop("roles", [USER])),
            is_verified=bool(extra.pop("is_verified", False)),
        )

    def create_superuser(
        self, email: str, password: str | None = None, *, username: str, name: str, **extra: Any
    ) -> User:
        return self.create_user(email, password, username=username, name=name, roles=[SYS_ADMIN], is_verified=True)


class User(AbstractBaseUser):
    id: models.UUIDField[uuid.UUID, uuid.UUID] = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name: models.CharField[str, str] = models.CharField(max_length=40)
    username: models.CharField[str, str] = models.CharField(max_length=40)
    # Stored lowercased by every writer, so a plain unique index is case-insensitive in effect.
    email: models.EmailField[str, str] = models.EmailField(max_length=254, unique=True)
    roles: ArrayField[list[str], list[str]] = ArrayField(
        CodeChoicesField(max_length=20, choices=[(r, r) for r in ROLES]), default=list
    )
    is_active: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    is_verified: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)
    # Bumped on every identity change and carried in events: consumers apply only newer versions.
    version: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=1)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["username", "name"]

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Also the index behind case-insensitive username lookups at login.
            models.UniqueConstraint(
                Lower("username"),
                name="accounts_user_username_ci_unique",
                violation_error_message="Username already taken",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def get_session_auth_hash(self) -> str:
        """Django's check of an admin-console session, on every request: bound to the password as Django's own,
        and to the credential epoch too, so "End all sessions", a reset, a role change or a deactivation ends
        the user's admin sessions with the rest (one Redis GET per admin request).

        Sessions signed under SECRET_KEY_FALLBACKS are not kept across a SECRET_KEY rotation: admins log in again.
        """
        value = f"{self.password}|{credential_epoch_get(str(self.pk))}"
        return salted_hmac("auth_service.accounts.User.session", value, algorithm="sha256").hexdigest()

    @property
    def is_staff(self) -> bool:
        return bool(ADMINS.intersection(self.roles))

    @property
    def is_superuser(self) -> bool:
        return SYS_ADMIN in self.roles

    def has_perm(self, perm: str, obj: object | None = None) -> bool:
        if not self.is_active:
            return False
        if SYS_ADMIN in self.roles:
            return True
        return ADMIN in self.roles and perm in ADMIN_PERMISSIONS

    def has_perms(self, perm_list: Any, obj: object | None = None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        if not self.is_active:
            return False
        if SYS_ADMIN in self.roles:
            return True
        return ADMIN in self.roles and app_label == "accounts"


class Role(models.Model):
    """Reference data for the admin: the four roles and their order (guest < user < admin < sys_admin)."""

    name: models.CharField[str, str] = models.CharField(max_length=20, primary_key=True)
    rank: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(unique=True)
    description: models.CharField[str, str] = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.name


class VerificationCode(models.Model):
    """A mailed 6-digit code; only its keyed hash is kept, so a database dump cannot be brute-forced offline."""

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    user: models.ForeignKey[User, User] = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="verification_codes"
    )
    user_id: uuid.UUID
    code_hash: models.CharField[str, str] = models.CharField(max_length=64)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    expires_at: models.DateTimeField[datetime, datetime] = models.DateTimeField()
    attempts: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(default=0)
    used_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["expires_at"], name="accounts_vcode_expires_idx")]

    def __str__(self) -> str:
        return f"verification code #{self.pk} of {self.user_id}"


class RecoveryToken(models.Model):
    """A mailed single-use password-reset token; only its SHA-256 is kept."""

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    user: models.ForeignKey[User, User] = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="recovery_tokens"
    )
    user_id: uuid.UUID
    token_hash: models.CharField[str, str] = models.CharField(max_length=64, unique=True)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    expires_at: models.DateTimeField[datetime, datetime] = models.DateTimeField()
    used_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["expires_at"], name="accounts_rtoken_expires_idx")]

    def __str__(self) -> str:
        return f"recovery token #{self.pk} of {self.user_id}"


class SigningKey(models.Model):
    """An RS256 key pair for access tokens, moving next → active → retired → deleted."""

    class State(models.TextChoices):
        NEXT = "next", "next"
        ACTIVE = "active", "active"
        RETIRED = "retired", "retired"

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    # The RFC 7638 thumbprint of the public key: stable, so importing the same PEM twice is a no-op.
    kid: models.CharField[str, str] = models.CharField(max_length=64, unique=True)
    private_pem: models.TextField[str, str] = models.TextField()
    public_jwk: models.JSONField[Any, Any] = models.JSONField()
    state: models.CharField[str, str] = CodeChoicesField(max_length=10, choices=State.choices, db_index=True)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    activated_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)
    retired_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Two processes racing to create or rotate keys can never leave two signers or two successors.
            models.UniqueConstraint(
                fields=["state"], condition=models.Q(state="active"), name="accounts_one_active_key"
            ),
            models.UniqueConstraint(fields=["state"], condition=models.Q(state="next"), name="accounts_one_next_key"),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.state})"

    def __repr__(self) -> str:
        # Never let the private key reach a log line or a traceback through repr().
        return f"<SigningKey {self.kid} {self.state}>"


class PasskeyUserHandle(models.Model):
    """The user's WebAuthn user handle: 32 random bytes, the only user id an authenticator stores (never the UUID
    or an e-mail, which would tie the credential to the account for whoever reads the authenticator)."""

    user: models.OneToOneField[User, User] = models.OneToOneField(
        User, on_delete=models.CASCADE, primary_key=True, related_name="passkey_handle"
    )
    user_id: uuid.UUID
    handle: models.BinaryField[bytes, bytes] = models.BinaryField(max_length=64, unique=True)

    def __str__(self) -> str:
        return f"passkey user handle of {self.user_id}"


class Passkey(models.Model):
    """A WebAuthn credential (passkey or security key) of a user: its public key and signature counter."""

    id: models.UUIDField[uuid.UUID, uuid.UUID] = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user: models.ForeignKey[User, User] = models.ForeignKey(User, on_delete=models.CASCADE, related_name="passkeys")
    user_id: uuid.UUID
    credential_id: models.BinaryField[bytes, bytes] = models.BinaryField(max_length=1023, unique=True)
    public_key: models.BinaryField[bytes, bytes] = models.BinaryField(help_text="COSE-encoded public key.")
    sign_count: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(default=0)
    transports: ArrayField[list[str], list[str]] = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    name: models.CharField[str, str] = models.CharField(max_length=64)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    last_used_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"passkey {self.name!r} of {self.user_id}"


class TotpDevice(models.Model):
    """A user's TOTP authenticator (RFC 6238). The secret is sealed under KEY_ENCRYPTION_KEYS (keyring.py); the
    device counts only once a correct code confirmed it. `last_used_step` is the newest 30 s step a code was accepted
    for: a code of that step or an older one is refused (a code works once)."""

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    user: models.OneToOneField[User, User] = models.OneToOneField(
        User, on_delete=models.CASCADE, related_name="totp_device"
    )
    user_id: uuid.UUID
    secret: models.TextField[str, str] = models.TextField()
    is_confirmed: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    last_used_step: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(null=True, blank=True)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    confirmed_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"TOTP of {self.user_id} ({'confirmed' if self.is_confirmed else 'pending'})"

    def __repr__(self) -> str:
        # Never let the secret reach a log line or a traceback through repr().
        return f"<TotpDevice {self.pk} of {self.user_id}>"


class RecoveryCode(models.Model):
    """One single-use recovery code of a user; only its keyed hash is kept. A used code is deleted."""

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    user: models.ForeignKey[User, User] = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    user_id: uuid.UUID
    code_hash: models.CharField[str, str] = models.CharField(max_length=64)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="accounts_recovery_code_unique")]

    def __str__(self) -> str:
        return f"recovery code #{self.pk} of {self.user_id}"
