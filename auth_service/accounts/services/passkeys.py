"""Passkeys (WebAuthn, SPEC §2b): registration and authentication ceremonies, and the user's list of them.

Challenges live in Redis, single use (accounts/passkey_challenges.py). A login with a passkey alone needs the
authenticator to have verified the user (PIN, biometrics): `amr` ["hwk"]. After a correct password (an `mfaToken`)
the passkey is a second factor and user presence is enough: `amr` ["pwd", "hwk"]. The signature counter must grow
unless the authenticator keeps none (both zero): a counter that does not is a cloned key. Failures count in the
account's login failure budget and answer the password login's generic 401.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, parse_client_data_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from auth_service.accounts import selectors
from auth_service.accounts.mail import PASSKEY_ADDED, PASSKEY_REFUSED, PASSKEY_REMOVED, mail_send_after_commit
from auth_service.accounts.mfa_tokens import AMR_HARDWARE_KEY, METHOD_PASSKEY
from auth_service.accounts.models import Passkey, PasskeyUserHandle, User
from auth_service.accounts.passkey_challenges import (
    PURPOSE_LOGIN,
    PURPOSE_REGISTRATION,
    challenge_consume,
    challenge_issue,
)
from auth_service.accounts.services._common import FAILURE, Kind, agent_load
from auth_service.accounts.services.login import (
    INVALID_CREDENTIALS,
    NOT_VERIFIED,
    TOO_MANY_LOGINS,
    second_step_complete,
)
from auth_service.accounts.services.sessions import TokenPair, session_open
from auth_service.accounts.throttle import login_attempt_refund, login_attempt_reserve
from auth_service.audit.services import security_event_record
from common.contracts.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized, ValidationFailed

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64
INVALID_REGISTRATION = "The passkey could not be registered: start again"
PASSKEY_NOT_FOUND = "Passkey not found"
_KNOWN_TRANSPORTS = frozenset(transport.value for transport in AuthenticatorTransport)
_DECOY_SALT = "authmesh.accounts.passkey-decoy"


def _options(options: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


def _timeout_ms() -> int:
    return int(settings.WEBAUTHN_CHALLENGE_TTL_SECONDS) * 1000


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=bytes(passkey.credential_id), transports=[AuthenticatorTransport(t) for t in passkey.transports]
    )


def _name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME_LENGTH:
        message = f"name must be 1 to {MAX_NAME_LENGTH} characters long"
        raise ValidationFailed([message], fields={"name": [message]})
    return name


def _challenge_of(credential: dict[str, Any]) -> bytes | None:
    """The challenge the browser signed, read from the client data (checked again by the verification)."""
    try:
        client_data = parse_client_data_json(base64url_to_bytes(credential["response"]["clientDataJSON"]))
    except (WebAuthnException, KeyError, TypeError, ValueError):
        return None
    return client_data.challenge


# --- registration --------------------------------------------------------------------------------------------------


def _user_handle(user: User) -> bytes:
    row, _ = PasskeyUserHandle.objects.get_or_create(user=user, defaults={"handle": secrets.token_bytes(32)})
    return bytes(row.handle)


def passkey_registration_options(*, user_id: str) -> dict[str, Any]:
    """Creation options for a new passkey of the caller: resident key and user verification preferred, the
    caller's passkeys excluded (an authenticator is not registered twice)."""
    user = agent_load(user_id)
    options = generate_registration_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        rp_name=settings.WEBAUTHN_RP_NAME,
        user_name=user.email,
        user_id=_user_handle(user),
        user_display_name=user.name,
        challenge=challenge_issue(purpose=PURPOSE_REGISTRATION, user_id=str(user.id)),
        timeout=_timeout_ms(),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(passkey) for passkey in selectors.passkey_credentials(user.id)],
    )
    return _options(options)


def passkey_register(*, user_id: str, credential: dict[str, Any], name: str) -> selectors.PasskeyInfo:
    """Verify the browser's new credential against a live challenge issued to this user, and store it."""
    user = agent_load(user_id)
    name = _name(name)
    challenge = _challenge_of(credential)
    live, issued_to = challenge_consume(purpose=PURPOSE_REGISTRATION, challenge=challenge or b"")
    if not live or issued_to is None or not constant_time_compare(issued_to, str(user.id)):
        _registration_failed(user, reason="challenge")
        raise BadRequest(INVALID_REGISTRATION)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge or b"",
            expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS),
        )
    except WebAuthnException as exc:
        log.info("passkey registration refused", extra={"reason": type(exc).__name__})
        _registration_failed(user, reason="invalid_attestation")
        raise BadRequest(INVALID_REGISTRATION) from None
    listed = credential["response"].get("transports")  # `response` is a dict: the verification parsed it
    transports = (
        sorted({t for t in listed if isinstance(t, str)} & _KNOWN_TRANSPORTS) if isinstance(listed, list) else []
    )
    try:
        with transaction.atomic():
            passkey = Passkey.objects.create(
                user=user,
                credential_id=verified.credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                transports=transports,
                name=name,
            )
            security_event_record(kind=Kind.PASSKEY_ADDED, user_id=user.id, actor_id=user.id, detail=_detail(passkey))
            mail_send_after_commit(PASSKEY_ADDED.mail(to=user.email, name=user.name, passkey_name=name))
    except IntegrityError:
        raise Conflict("This passkey is already registered") from None
    log.info("passkey added", extra={"passkey_id": str(passkey.id)})
    return selectors.passkey_info(passkey)


def _registration_failed(user: User, *, reason: str) -> None:
    with transaction.atomic():
        security_event_record(kind=Kind.PASSKEY_REGISTRATION, outcome=FAILURE, user_id=user.id, reason=reason)
        mail_send_after_commit(PASSKEY_REFUSED.mail(to=user.email, name=user.name))


def _detail(passkey: Passkey) -> dict[str, str]:
    return {"passkey_id": str(passkey.id), "name": passkey.name}


# --- authentication ------------------------------------------------------------------------------------------------


def _decoys(slug: str) -> list[PublicKeyCredentialDescriptor]:
    # The same made-up credential for a slug every time: an unknown account (or one without passkeys) looks like an
    # account with one passkey, and asking twice does not tell them apart.
    credential_id = salted_hmac(_DECOY_SALT, slug.strip().lower(), algorithm="sha256").digest()
    return [
        PublicKeyCredentialDescriptor(
            id=credential_id, transports=[AuthenticatorTransport.INTERNAL, AuthenticatorTransport.HYBRID]
        )
    ]


def passkey_login_options(*, slug: str | None) -> dict[str, Any]:
    """Request options for a login: with a slug, that account's passkeys (or plausible made-up ones, never telling
    whether it exists); without, none listed, and the browser offers its discoverable credentials."""
    allow: list[PublicKeyCredentialDescriptor] = []
    if slug and slug.strip():
        user = selectors.user_get_by_slug(slug)
        passkeys = selectors.passkey_credentials(user.id) if user else []
        allow = [_descriptor(passkey) for passkey in passkeys] or _decoys(slug)
    options = generate_authentication_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        challenge=challenge_issue(purpose=PURPOSE_LOGIN),
        timeout=_timeout_ms(),
        allow_credentials=allow,
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return _options(options)


def passkey_authenticate(
    *, credential: dict[str, Any], mfa_token: str | None, ip: str | None, user_agent: str | None
) -> TokenPair:
    """Log in with a passkey alone (the authenticator verified its user), or finish a password login with it
    (`mfa_token`: the login's second step, under the rules every second factor shares); a new session."""
    if mfa_token is not None:
        return second_step_complete(
            mfa_token=mfa_token,
            method=METHOD_PASSKEY,
            amr=AMR_HARDWARE_KEY,
            check=lambda user: _second_factor_accepted(user, credential),
            ip=ip,
            user_agent=user_agent,
        )
    challenge = _challenge_of(credential) or b""
    live, _ = challenge_consume(purpose=PURPOSE_LOGIN, challenge=challenge)
    passkey = _passkey_of(credential)
    user = passkey.user if passkey else None
    attempt = login_attempt_reserve(
        user_id=str(user.id) if user else None, slug=f"passkey:{credential.get('rawId', '')}"[:300], ip=ip
    )
    if attempt.retry_after is not None:
        _login_failed(user, reason="throttled")
        raise TooManyRequests(TOO_MANY_LOGINS, headers={"Retry-After": str(attempt.retry_after)})
    reason = _refusal(credential, challenge=challenge, live=live, passkey=passkey, user_verification=True)
    if reason is not None or user is None:
        _login_failed(user, reason=reason or "unknown_passkey", mail=user is not None)
        raise Unauthorized(INVALID_CREDENTIALS)
    if not user.is_active:
        _login_failed(user, reason="inactive")
        raise Unauthorized(INVALID_CREDENTIALS)
    login_attempt_refund(attempt)
    if not user.is_verified:
        _login_failed(user, reason="unverified")
        raise BadRequest(NOT_VERIFIED)
    amr = (AMR_HARDWARE_KEY,)
    pair = session_open(user=user, ip=ip, user_agent=user_agent, amr=amr)
    if pair is None:
        _login_failed(user, reason="credentials_changed")
        raise Unauthorized(INVALID_CREDENTIALS)
    security_event_record(
        kind=Kind.LOGIN, user_id=user.id, detail={"sid": pair.session_id, "method": METHOD_PASSKEY, "amr": list(amr)}
    )
    log.info("passkey login succeeded", extra={"sid": pair.session_id})
    return pair


def _second_factor_accepted(user: User, credential: dict[str, Any]) -> bool:
    """After a right password, presence on one of the user's own passkeys is enough (no user verification)."""
    challenge = _challenge_of(credential) or b""
    live, _ = challenge_consume(purpose=PURPOSE_LOGIN, challenge=challenge)
    passkey = _passkey_of(credential)
    if passkey is not None and passkey.user_id != user.id:
        passkey = None
    reason = _refusal(credential, challenge=challenge, live=live, passkey=passkey, user_verification=False)
    if reason is not None:
        log.info("passkey refused as a second factor", extra={"reason": reason})
    return reason is None


def _passkey_of(credential: dict[str, Any]) -> Passkey | None:
    raw_id = credential.get("rawId")
    if not isinstance(raw_id, str) or len(raw_id) > 1400:
        return None
    try:
        return selectors.passkey_get_by_credential_id(base64url_to_bytes(raw_id))
    except ValueError:
        return None


def _refusal(
    credential: dict[str, Any], *, challenge: bytes, live: bool, passkey: Passkey | None, user_verification: bool
) -> str | None:
    """Why the assertion is refused (None: it is good, and the passkey's counter and last use are recorded)."""
    if not live:
        return "challenge"
    if passkey is None:
        return "unknown_passkey"
    handle = credential.get("response", {}).get("userHandle") if isinstance(credential.get("response"), dict) else None
    if handle and not _handle_matches(passkey, handle):
        return "user_handle"
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS),
            credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
            # Passwordless, the passkey is the only factor: the authenticator must have verified the user.
            require_user_verification=user_verification,
        )
    except WebAuthnException as exc:
        message = str(exc).lower()
        log.info("passkey assertion refused", extra={"reason": type(exc).__name__})
        if "sign count" in message:
            return "sign_count"
        if "user verification" in message:
            return "user_not_verified"
        return "invalid_assertion"
    # Conditional on the counter read: of two racing uses of one assertion counter, only one moves it.
    updated = Passkey.objects.filter(pk=passkey.pk, sign_count=passkey.sign_count).update(
        sign_count=verified.new_sign_count, last_used_at=timezone.now()
    )
    return None if updated else "sign_count"


def _handle_matches(passkey: Passkey, handle: Any) -> bool:
    stored = PasskeyUserHandle.objects.filter(user_id=passkey.user_id).values_list("handle", flat=True).first()
    try:
        given = base64url_to_bytes(handle) if isinstance(handle, str) else b""
    except ValueError:
        return False
    return stored is not None and secrets.compare_digest(bytes(stored), given)


def _login_failed(user: User | None, *, reason: str, mail: bool = False) -> None:
    with transaction.atomic():
        security_event_record(
            kind=Kind.LOGIN,
            outcome=FAILURE,
            user_id=user.id if user else None,
            reason=reason,
            detail={"method": METHOD_PASSKEY},
        )
        if mail and user is not None:
            mail_send_after_commit(PASSKEY_REFUSED.mail(to=user.email, name=user.name))


# --- management ----------------------------------------------------------------------------------------------------


def passkey_list(*, user_id: str) -> list[selectors.PasskeyInfo]:
    return selectors.passkey_list(agent_load(user_id).id)


def _own(user: User, passkey_id: str) -> Passkey:
    passkey = Passkey.objects.select_for_update().filter(pk=passkey_id, user=user).first()
    if passkey is None:
        raise NotFound(PASSKEY_NOT_FOUND)
    return passkey


@transaction.atomic
def passkey_rename(*, user_id: str, passkey_id: str, name: str) -> selectors.PasskeyInfo:
    """Give one of the caller's passkeys a new name."""
    user = agent_load(user_id)
    passkey = _own(user, passkey_id)
    old_name, passkey.name = passkey.name, _name(name)
    passkey.save(update_fields=["name"])
    security_event_record(
        kind=Kind.PASSKEY_RENAMED, user_id=user.id, actor_id=user.id, detail={**_detail(passkey), "from": old_name}
    )
    return selectors.passkey_info(passkey)


@transaction.atomic
def passkey_delete(*, user_id: str, passkey_id: str) -> None:
    """Remove one of the caller's passkeys: it logs nobody in from now on."""
    user = agent_load(user_id)
    passkey = _own(user, passkey_id)
    detail = _detail(passkey)
    passkey.delete()
    security_event_record(kind=Kind.PASSKEY_REMOVED, user_id=user.id, actor_id=user.id, detail=detail)
    mail_send_after_commit(PASSKEY_REMOVED.mail(to=user.email, name=user.name, passkey_name=detail["name"]))
