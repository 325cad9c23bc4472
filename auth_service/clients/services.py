"""Writes of service accounts: create, rotate the secret, disable, enable; and token issuance (client credentials).

Secrets are 256 random bits (`new_token`) stored as a plain SHA-256 digest, as the refresh sessions' checks are:
against that much entropy a slow password hash adds nothing an attacker could feel, and it would make every
token request spend an argon2 computation that anyone may trigger. The digest is compared in constant time, and
an unknown client id is compared against a stand-in digest, so a wrong id and a wrong secret cost the same.

Every change commits first and then moves the client's liveness marker (liveness.py), which the gateway checks
on each request: a rotation or disabling ends the client's tokens at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from auth_service.accounts.crypto import digests_equal, new_token, token_digest
from auth_service.accounts.services.signing_keys import signing_key_for_signing
from auth_service.accounts.tokens import client_access_token_encode
from auth_service.audit.models import SecurityEvent
from auth_service.audit.services import security_event_record
from auth_service.clients import selectors
from auth_service.clients.liveness import client_mark, client_unmark, client_unmark_stale
from auth_service.clients.models import ServiceClient
from auth_service.clients.policies import (
    invalid_client,
    name_checked,
    new_client_id,
    scopes_checked,
    scopes_granted,
)
from common.contracts.errors import NotFound, ServiceError

Kind = SecurityEvent.Kind
FAILURE = SecurityEvent.Outcome.FAILURE
# What an unknown client id's "secret" is compared with: the digest of nothing anyone can present.
_UNKNOWN_DIGEST = token_digest(new_token())


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


def _locked(client_id: str) -> ServiceClient:
    client = ServiceClient.objects.select_for_update().filter(client_id=client_id).first()
    if client is None:
        raise NotFound("Service account not found")
    return client


def _detail(client: ServiceClient, **extra: Any) -> dict[str, Any]:
    return {"client_id": client.client_id, "epoch": client.epoch, **extra}


def client_create(*, name: str, scopes: Sequence[str], actor_id: str | None = None) -> tuple[ServiceClient, str]:
    """A new enabled client; returns it with its secret, which is shown once and never stored."""
    secret = new_token()
    with transaction.atomic():
        client = ServiceClient.objects.create(
            client_id=new_client_id(),
            name=name_checked(name),
            scopes=scopes_checked(scopes),
            secret_digest=token_digest(secret),
        )
        security_event_record(
            kind=Kind.CLIENT_CREATED, actor_id=actor_id, detail=_detail(client, name=client.name, scopes=client.scopes)
        )
        transaction.on_commit(lambda: client_mark(client.client_id, client.epoch))
    return client, secret


def client_secret_rotate(*, client_id: str, actor_id: str | None = None) -> tuple[ServiceClient, str]:
    """A new secret; the old one and every token issued before stop working at once."""
    secret = new_token()
    with transaction.atomic():
        client = _locked(client_id)
        client.secret_digest = token_digest(secret)
        client.epoch += 1
        client.secret_rotated_at = timezone.now()
        client.save(update_fields=["secret_digest", "epoch", "secret_rotated_at"])
        security_event_record(kind=Kind.CLIENT_SECRET_ROTATED, actor_id=actor_id, detail=_detail(client))
        if client.is_active:
            transaction.on_commit(lambda: client_mark(client.client_id, client.epoch))
    return client, secret


def client_disable(*, client_id: str, actor_id: str | None = None) -> ServiceClient:
    """No more tokens for the client, and its tokens already issued are refused at once (even once re-enabled)."""
    with transaction.atomic():
        client = _locked(client_id)
        if not client.is_active:
            return client
        client.is_active = False
        client.epoch += 1
        client.save(update_fields=["is_active", "epoch"])
        security_event_record(kind=Kind.CLIENT_DISABLED, actor_id=actor_id, detail=_detail(client))
        transaction.on_commit(lambda: client_unmark(client.client_id))
    return client


def client_enable(*, client_id: str, actor_id: str | None = None) -> ServiceClient:
    """The client may obtain tokens again (those issued before it was disabled stay refused)."""
    with transaction.atomic():
        client = _locked(client_id)
        if client.is_active:
            return client
        client.is_active = True
        client.save(update_fields=["is_active"])
        security_event_record(kind=Kind.CLIENT_ENABLED, actor_id=actor_id, detail=_detail(client))
        transaction.on_commit(lambda: client_mark(client.client_id, client.epoch))
    return client


def _refused(reason: str, *, client: ServiceClient | None, client_id: str, error: ServiceError) -> ServiceError:
    if client is None:
        # An id that names no client is kept only as a keyed hash (repeated tries can be correlated, nothing more).
        security_event_record(kind=Kind.CLIENT_TOKEN, outcome=FAILURE, identifier=client_id, reason=reason)
    else:
        security_event_record(kind=Kind.CLIENT_TOKEN, outcome=FAILURE, reason=reason, detail=_detail(client))
    return error


def client_token_issue(*, client_id: str, client_secret: str, scope: str | None) -> IssuedToken:
    """RFC 6749 §4.4: an access token for an enabled client whose secret matches, with the scopes it asked for."""
    client = selectors.service_client_get(client_id)
    matches = digests_equal(token_digest(client_secret), client.secret_digest if client else _UNKNOWN_DIGEST)
    if client is None or not matches:
        raise _refused(
            "unknown_client" if client is None else "bad_secret",
            client=client,
            client_id=client_id,
            error=invalid_client(),
        )
    if not client.is_active:
        raise _refused("disabled", client=client, client_id=client_id, error=invalid_client())
    try:
        granted = scopes_granted(scope, client.scopes)
    except ServiceError as exc:
        raise _refused(exc.code, client=client, client_id=client_id, error=exc) from None
    # Marked, then confirmed: a rotation or disabling that committed meanwhile is seen by the second read, and one
    # that commits after it moves the marker after this write (see liveness.py).
    client_mark(client.client_id, client.epoch)
    if not selectors.service_client_is_current(client.client_id, epoch=client.epoch):
        client_unmark_stale(client.client_id, client.epoch)
        raise _refused("changed", client=client, client_id=client_id, error=invalid_client())
    kid, key = signing_key_for_signing()
    token = client_access_token_encode(
        kid=kid, key=key, client_id=client.client_id, scopes=granted, epoch=client.epoch, now=int(time.time())
    )
    security_event_record(kind=Kind.CLIENT_TOKEN, detail=_detail(client, scope=" ".join(granted)))
    return IssuedToken(access_token=token, expires_in=int(settings.ACCESS_TOKEN_TTL_SECONDS), scope=" ".join(granted))
