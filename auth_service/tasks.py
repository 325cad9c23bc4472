"""Celery tasks of the auth service: mail, outbox relay, signing-key rotation and clean-up."""

from __future__ import annotations

import logging
from datetime import timedelta
from smtplib import SMTPException

from django.conf import settings
from django.core import mail

from auth_service.accounts.mail import SEND_MAIL_TASK, unseal
from auth_service.celery import app

log = logging.getLogger(__name__)

# Services, the outbox relay (and so models) are imported inside the tasks: the Celery app imports this module as
# it is created (autodiscover with force=True), which in a worker is before Django's app registry is ready.


@app.task(
    name=SEND_MAIL_TASK,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    acks_late=True,
)
def send_mail(*, to: str, subject: str, sealed_body: str) -> None:
    """Deliver one message; SMTP and network failures are retried with exponential backoff (for about 20 minutes)."""
    mail.send_mail(subject, unseal(sealed_body), None, [to], fail_silently=False)


@app.task(ignore_result=True)
def relay_outbox() -> int:
    """Publish pending outbox rows to JetStream (safe with several relays running)."""
    # Imported here: the relay pulls in NATS/JetStream machinery that the other tasks do not need.
    from common.outbox.relay import relay_pending

    return relay_pending(batch_size=int(settings.OUTBOX_BATCH_SIZE))


def kick_relay() -> None:
    """OUTBOX_KICK: after a commit, relay now. Cheap, and never raises into the committed request.

    In a bridge process the in-process relay publishes at once (common.outbox.relay.LocalRelay); elsewhere (the
    admin's HTTP process, a command) a Celery worker is asked to.
    """
    from common.outbox.relay import relay_wake_local

    if relay_wake_local():
        return
    try:
        # No publish retries: the request that committed is waiting on this call, and beat is the safety net.
        relay_outbox.apply_async(retry=False)
    except Exception:
        # Beat runs the relay every few seconds anyway; a missed kick only adds that much latency.
        log.warning("could not enqueue the outbox relay; the periodic relay will publish", exc_info=True)


@app.task(ignore_result=True)
def rotate_signing_keys() -> None:
    """Rotate the signing keys when the active one has reached SIGNING_KEY_ROTATION_DAYS (beat runs this daily)."""
    from auth_service.accounts.services.signing_keys import signing_key_rotate

    signing_key_rotate(min_age=timedelta(days=int(settings.SIGNING_KEY_ROTATION_DAYS)))


@app.task(ignore_result=True)
def purge_expired() -> dict[str, int]:
    """Delete expired or spent verification codes and recovery tokens, and long-retired signing keys."""
    from auth_service.accounts.services.housekeeping import expired_records_purge

    return expired_records_purge()
