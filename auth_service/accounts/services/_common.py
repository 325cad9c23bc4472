"""Helpers shared by the identity services: change recording, validation, locking, authorisation, user rows."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from auth_service.accounts import selectors
from auth_service.accounts.crypto import new_verification_code, verification_code_digest
from auth_service.accounts.mail import mail_send_after_commit, verification_mail
from auth_service.accounts.models import User, VerificationCode
from auth_service.accounts.policies import can_write_user, sorted_roles
from auth_service.accounts.sessions import session_store_delete_all
from auth_service.accounts.snapshots import user_snapshot
from auth_service.audit.models import SecurityEvent
from common.contracts import events
from common.contracts.errors import NotFound, Unauthorized, ValidationFailed
from common.outbox.services import outbox_append

Kind = SecurityEvent.Kind
FAILURE = SecurityEvent.Outcome.FAILURE


def record_change(user: User, *, fields: Iterable[str], event_types: Sequence[str]) -> None:
    """Save the changed fields and append one event per kind of change, each carrying the next version."""
    base = user.version
    user.version = base + len(event_types)
    user.save(update_fields=[*dict.fromkeys(fields), "version", "updated_at"])
    for offset, event_type in enumerate(event_types, start=1):
        outbox_append(aggregate_id=user.id, event_type=event_type, payload=user_snapshot(user, version=base + offset))


def end_sessions_after_commit(user_id: uuid.UUID, *, keep_sid: str | None = None) -> None:
    transaction.on_commit(partial(session_store_delete_all, str(user_id), keep_sid=keep_sid))


def password_policy_errors(password: str, user: User) -> list[str]:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        return list(exc.messages)
    return []


def raise_if_errors(errors: Mapping[str, list[str]]) -> None:
    if errors:
        messages = [f"{field}: {message}" for field, items in errors.items() for message in items]
        raise ValidationFailed(messages, fields=dict(errors))


def verification_code_issue(user: User) -> str:
    """A fresh code replaces every earlier one of the user (only the newest mail is valid)."""
    VerificationCode.objects.filter(user=user).delete()
    code = new_verification_code()
    VerificationCode.objects.create(
        user=user,
        code_hash=verification_code_digest(user_id=str(user.id), code=code),
        expires_at=timezone.now() + timedelta(seconds=int(settings.VERIFICATION_CODE_TTL_SECONDS)),
    )
    return code


def lock_user(user_id: uuid.UUID | str) -> User | None:
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    return User.objects.select_for_update().filter(pk=key).first()


def agent_load(agent_id: str) -> User:
    """The caller's current state: roles and activity are never taken from the token for a write."""
    agent = selectors.user_get(agent_id)
    if agent is None:
        raise Unauthorized("Your account no longer exists")
    return agent


def authorize(
    *,
    agent: User,
    target_id: str,
    target: User | None,
    change: Collection[str],
    new_roles: Collection[str] | None = None,
) -> User:
    """Apply the permission matrix; an unknown target is 404 only for a caller who could have acted on it."""
    can_write_user(
        agent_roles=agent.roles,
        agent_id=str(agent.id),
        agent_active=agent.is_active,
        target_id=str(target.id) if target is not None else target_id,
        target_roles=target.roles if target is not None else (),
        change=change,
        new_roles=new_roles,
    )
    if target is None:
        raise NotFound("User not found")
    return target


def user_row_create(
    *, name: str, username: str, email: str, encoded_password: str, roles: Sequence[str], is_verified: bool
) -> User:
    """Insert the user with its registered event (and a mailed code when unverified). Runs inside a transaction."""
    user = User.objects.create(
        name=name,
        username=username,
        email=email,
        password=encoded_password,
        roles=sorted_roles(roles),
        is_verified=is_verified,
        version=1,
    )
    outbox_append(aggregate_id=user.id, event_type=events.USER_REGISTERED, payload=user_snapshot(user))
    if not is_verified:
        code = verification_code_issue(user)
        mail_send_after_commit(verification_mail(to=user.email, name=user.name, code=code))
    return user
