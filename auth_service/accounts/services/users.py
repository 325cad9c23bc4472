"""User management under the permission matrix: create, update, (de)activate, deny, delete."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction

from auth_service.accounts import selectors
from auth_service.accounts.crypto import digests_equal
from auth_service.accounts.mail import EMAIL_CHANGED, mail_send_after_commit, verification_mail
from auth_service.accounts.models import User
from auth_service.accounts.policies import (
    ACTION_CREATE,
    ACTION_DEACTIVATE,
    ACTION_DELETE,
    ACTION_DENY,
    ACTION_REACTIVATE,
    FIELD_ROLES,
    can_write,
    normalize_email,
    profile_errors,
    sorted_roles,
)
from auth_service.accounts.services._common import (
    FAILURE,
    Kind,
    agent_load,
    authorize,
    end_sessions_after_commit,
    lock_user,
    password_policy_errors,
    raise_if_errors,
    record_change,
    user_row_create,
    verification_code_issue,
)
from auth_service.accounts.sessions import credential_epoch_bump
from auth_service.audit.services import failure_recorded, security_event_record
from common.contracts import events
from common.contracts.errors import Conflict, ServiceError
from common.contracts.events import UserDeleted
from common.outbox.services import outbox_append

log = logging.getLogger(__name__)


def user_provision(
    *,
    email: str,
    username: str,
    name: str,
    password: str | None,
    roles: Sequence[str],
    is_verified: bool,
) -> User:
    """Create a user for a trusted caller (seed, createsuperuser): no permission matrix, no password policy."""
    email = normalize_email(email)
    roles = sorted_roles(roles)
    raise_if_errors(profile_errors(name=name, username=username, email=email, roles=roles))
    encoded = make_password(password)  # None gives an unusable password
    try:
        with transaction.atomic():
            return user_row_create(
                name=name,
                username=username,
                email=email,
                encoded_password=encoded,
                roles=roles,
                is_verified=is_verified,
            )
    except IntegrityError:
        raise Conflict("A user with this e-mail or username already exists") from None


def user_create(*, agent_id: str, name: str, username: str, email: str, password: str, roles: Sequence[str]) -> User:
    """An admin creates an unverified account with chosen roles (never above what the matrix allows); a code is mailed."""
    agent = agent_load(agent_id)
    roles = list(roles)
    can_write(agent, None, change={ACTION_CREATE}, new_roles=roles)
    email = normalize_email(email)
    errors = profile_errors(name=name, username=username, email=email, roles=roles)
    if password_errors := password_policy_errors(password, User(name=name, username=username, email=email)):
        errors["password"] = password_errors
    raise_if_errors(errors)
    if selectors.email_taken(email):
        raise Conflict("Email already in use", fields={"email": ["Email already in use"]})
    if selectors.username_taken(username):
        raise Conflict("Username already taken", fields={"username": ["Username already taken"]})
    encoded = make_password(password)
    try:
        with transaction.atomic():
            user = user_row_create(
                name=name, username=username, email=email, encoded_password=encoded, roles=roles, is_verified=False
            )
    except IntegrityError:
        raise Conflict("A user with this e-mail or username already exists") from None
    log.info("user created", extra={"target_user_id": str(user.id)})
    return user


def user_update(*, agent_id: str, user_id: str, changes: Mapping[str, Any], agent_sid: str | None = None) -> User:
    """Change name, username, email, roles or password under the permission matrix; one event per kind of change."""
    try:
        return _user_update(agent_id=agent_id, user_id=user_id, changes=changes, agent_sid=agent_sid)
    except ServiceError as exc:
        # A refused role or password change is what the security log is for; a refused rename is not.
        for field, kind in ((FIELD_ROLES, Kind.ROLES_CHANGED), ("password", Kind.PASSWORD_CHANGED)):
            if field in changes:
                security_event_record(kind=kind, outcome=FAILURE, user_id=user_id, actor_id=agent_id, reason=exc.code)
        raise


def _user_update(*, agent_id: str, user_id: str, changes: Mapping[str, Any], agent_sid: str | None) -> User:
    writable = {"name", "username", "email", "password", FIELD_ROLES}
    change = {key for key in changes if key in writable}
    if "oldPassword" in changes and "password" not in changes:
        raise_if_errors({"oldPassword": ["oldPassword is only accepted together with password"]})
    if not change:
        raise_if_errors({"changes": ["Give at least one field to change"]})
    new_roles = sorted_roles(changes[FIELD_ROLES]) if FIELD_ROLES in changes else None
    new_email = normalize_email(changes["email"]) if "email" in changes else None
    with transaction.atomic():
        agent = agent_load(agent_id)
        target = authorize(
            agent=agent, target_id=user_id, target=lock_user(user_id), change=change, new_roles=new_roles
        )
        is_self = target.id == agent.id
        errors = profile_errors(
            name=changes.get("name"), username=changes.get("username"), email=new_email, roles=new_roles
        )
        encoded_password = _new_password(target, changes, is_self=is_self, errors=errors)
        raise_if_errors(errors)
        if new_email is not None and selectors.email_taken(new_email, exclude_id=target.id):
            raise Conflict("Email already in use", fields={"email": ["Email already in use"]})
        if "username" in changes and selectors.username_taken(changes["username"], exclude_id=target.id):
            raise Conflict("Username already taken", fields={"username": ["Username already taken"]})

        updated: list[str] = []
        event_types: list[str] = []
        old_email = target.email
        old_roles = sorted_roles(target.roles)
        for field, value in (
            ("name", changes.get("name")),
            ("username", changes.get("username")),
            ("email", new_email),
        ):
            if value is not None and getattr(target, field) != value:
                setattr(target, field, value)
                updated.append(field)
        if "email" in updated:
            # The address is the recovery channel: a new one must be proven before the account is trusted again.
            target.is_verified = False
            updated.append("is_verified")
        if updated:
            event_types.append(events.USER_UPDATED)
        if new_roles is not None and new_roles != old_roles:
            target.roles = new_roles
            updated.append("roles")
            event_types.append(events.USER_ROLES_CHANGED)
            # Access tokens carry the roles: the ones issued before the change stop working at once.
            transaction.on_commit(
                partial(credential_epoch_bump, str(target.id), end_sessions=False, revoke_tokens=True)
            )
        if encoded_password is not None:
            target.password = encoded_password
            updated.append("password")
            event_types.append(events.USER_PASSWORD_CHANGED)
            # Other sessions may belong to whoever learnt the old password; the caller's own one stays.
            end_sessions_after_commit(target.id, keep_sid=agent_sid if is_self else None)
        if not event_types:
            return target
        try:
            with transaction.atomic():
                record_change(target, fields=updated, event_types=event_types)
                if "roles" in updated:
                    security_event_record(
                        kind=Kind.ROLES_CHANGED,
                        user_id=target.id,
                        actor_id=agent.id,
                        detail={"from": old_roles, "to": new_roles},
                    )
                if encoded_password is not None:
                    security_event_record(kind=Kind.PASSWORD_CHANGED, user_id=target.id, actor_id=agent.id)
        except IntegrityError:
            raise Conflict("A user with this e-mail or username already exists") from None
        if "email" in updated:
            code = verification_code_issue(target)
            mail_send_after_commit(verification_mail(to=target.email, name=target.name, code=code))
            mail_send_after_commit(EMAIL_CHANGED.mail(to=old_email, name=target.name, new_email=target.email))
    log.info("user updated", extra={"target_user_id": str(target.id), "changed": sorted(set(updated) - {"password"})})
    return target


def _new_password(
    target: User, changes: Mapping[str, Any], *, is_self: bool, errors: dict[str, list[str]]
) -> str | None:
    """Validate a password change (own: old password required, new must differ) and return its hash."""
    if "password" not in changes:
        return None
    new = changes["password"]
    if is_self:
        old = changes.get("oldPassword")
        if not old:
            errors["oldPassword"] = ["oldPassword is required to change your password"]
            return None
        if not check_password(old, target.password):
            errors["oldPassword"] = ["Old password is incorrect"]
            return None
        if digests_equal(old, new):
            errors["password"] = ["The new password must differ from the old one"]
            return None
    elif "oldPassword" in changes:
        errors["oldPassword"] = ["oldPassword is only accepted when changing your own password"]
        return None
    if password_errors := password_policy_errors(new, target):
        errors["password"] = password_errors
        return None
    return make_password(new)


_ACTIVITY_KINDS = {
    ACTION_DEACTIVATE: Kind.USER_DEACTIVATED,
    ACTION_REACTIVATE: Kind.USER_REACTIVATED,
    ACTION_DENY: Kind.ACCESS_DENIED,
}


def _set_active(*, agent_id: str, user_id: str, action: str, active: bool) -> User:
    kind = _ACTIVITY_KINDS[action]
    with failure_recorded(kind, user_id=user_id, actor_id=agent_id), transaction.atomic():
        agent = agent_load(agent_id)
        target = authorize(agent=agent, target_id=user_id, target=lock_user(user_id), change={action})
        if target.is_active != active:
            target.is_active = active
            event = events.USER_REACTIVATED if active else events.USER_DEACTIVATED
            record_change(target, fields=["is_active"], event_types=[event])
        if not active:
            # Even when already inactive: whatever session exists must end now.
            end_sessions_after_commit(target.id)
        security_event_record(kind=kind, user_id=target.id, actor_id=agent.id)
    log.info("user activity changed", extra={"target_user_id": str(target.id), "action": action})
    return target


def user_deactivate(*, agent_id: str, user_id: str) -> User:
    """Deactivate an account (self-service or by the matrix) and end all its sessions."""
    return _set_active(agent_id=agent_id, user_id=user_id, action=ACTION_DEACTIVATE, active=False)


def user_reactivate(*, agent_id: str, user_id: str) -> User:
    """Reactivate an account (admin console); its sessions stay ended, the user logs in again."""
    return _set_active(agent_id=agent_id, user_id=user_id, action=ACTION_REACTIVATE, active=True)


def access_deny(*, agent_id: str, user_id: str) -> None:
    """A sys_admin cuts a user off: deactivated and every session ended, effective on the next request."""
    _set_active(agent_id=agent_id, user_id=user_id, action=ACTION_DENY, active=False)


def user_delete(*, agent_id: str, user_id: str) -> None:
    """A sys_admin deletes an account: its row, codes and tokens go, its sessions end, main_api drops it."""
    with failure_recorded(Kind.USER_DELETED, user_id=user_id, actor_id=agent_id), transaction.atomic():
        agent = agent_load(agent_id)
        target = authorize(agent=agent, target_id=user_id, target=lock_user(user_id), change={ACTION_DELETE})
        target_id = target.id
        outbox_append(
            aggregate_id=target_id,
            event_type=events.USER_DELETED,
            payload=UserDeleted(id=target_id, version=target.version + 1),
        )
        target.delete()
        end_sessions_after_commit(target_id)
        security_event_record(kind=Kind.USER_DELETED, user_id=target_id, actor_id=agent.id)
    log.info("user deleted", extra={"target_user_id": str(target_id)})
