"""Mail: the texts the auth service sends, their queueing after commit, and the development backend (console plus
one .eml file each)."""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.console import EmailBackend as ConsoleBackend
from django.db import transaction
from django.utils.crypto import salted_hmac

log = logging.getLogger(__name__)

# The Celery task that delivers a queued mail (auth_service.tasks.send_mail), named here so that queueing a mail
# needs the task's name only, never the task module (which imports the services that queue mail).
SEND_MAIL_TASK = "auth_service.tasks.send_mail"
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9@._+-]")
# Picking a free file name and creating it must not interleave between threads of one process.
_write_lock = threading.Lock()


_SEAL_SALT = "authmesh.accounts.mail-seal"


def _sealer() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    keys = [
        base64.urlsafe_b64encode(salted_hmac(_SEAL_SALT, "", secret=s, algorithm="sha256").digest()) for s in secrets
    ]
    return MultiFernet([Fernet(key) for key in keys])


def seal(text: str) -> str:
    """Encrypt a mail body for its trip through the broker: it holds a code or token, and task arguments end up
    in the broker's storage and in task logs (Celery logs them in full when tasks run eagerly)."""
    return _sealer().encrypt(text.encode()).decode()


def unseal(token: str) -> str:
    return _sealer().decrypt(token.encode()).decode()


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


def _letter(*, to: str, name: str, subject: str, text: str) -> Mail:
    """A mail to one user: the greeting, then `text` (its paragraphs, each line ending in a newline)."""
    return Mail(to=to, subject=subject, body=f"Hello {name},\n\n{text}")


def verification_mail(*, to: str, name: str, code: str) -> Mail:
    minutes = int(settings.VERIFICATION_CODE_TTL_SECONDS) // 60
    text = f"your verification code is {code}\n\nIt expires in {minutes} minutes.\n"
    return _letter(to=to, name=name, subject="Your verification code", text=text)


def recovery_mail(*, to: str, name: str, token: str) -> Mail:
    minutes = int(settings.RECOVERY_TOKEN_TTL_SECONDS) // 60
    text = (
        f"your recovery token is:\n\n{token}\n\n"
        f"It can be used once, within {minutes} minutes. If you did not ask for it, ignore this message.\n"
    )
    return _letter(to=to, name=name, subject="Reset your password", text=text)


@dataclass(frozen=True)
class Notice:
    """A fixed mail that tells a user what happened to their account: `text` may name `{fields}` that the sender
    fills in (`Notice.mail`)."""

    subject: str
    text: str

    def mail(self, *, to: str, name: str, **fields: str) -> Mail:
        return _letter(to=to, name=name, subject=self.subject, text=self.text.format(**fields))


SIGNUP_ATTEMPTED = Notice(
    subject="Sign-up attempt with your address",
    text="someone tried to sign up with your address, which already has an account.\n"
    "If it was you, log in or recover your credentials. Otherwise you can ignore this message.\n",
)
EMAIL_CHANGED = Notice(
    subject="Your e-mail address was changed",
    text="the e-mail address of your account was changed to {new_email}.\n"
    "If you did not do this, contact an administrator.\n",
)
PASSKEY_ADDED = Notice(
    subject="A passkey was added to your account",
    text='a passkey named "{passkey_name}" was added to your account; it can now log you in.\n'
    "If you did not do this, remove it, change your password and contact an administrator.\n",
)
PASSKEY_REMOVED = Notice(
    subject="A passkey was removed from your account",
    text='the passkey named "{passkey_name}" was removed from your account.\n'
    "If you did not do this, change your password and contact an administrator.\n",
)
PASSKEY_REFUSED = Notice(
    subject="A passkey of your account was refused",
    text="a login or registration with a passkey of your account was refused.\n"
    "If it was not you, someone may be trying to use your account: review your passkeys and sessions.\n",
)


def security_notice_mail(*, to: str, name: str, subject: str, what: str) -> Mail:
    """A change or a failure on the account's second factors (`what`: one sentence; never a code or a secret)."""
    text = f"{what}\n\nIf this was not you, change your password and contact an administrator.\n"
    return _letter(to=to, name=name, subject=subject, text=text)


def mail_send_after_commit(mail: Mail) -> None:
    """Queue the mail once the current transaction commits (nothing leaves for a change that is rolled back)."""
    transaction.on_commit(partial(mail_enqueue, mail))


def mail_enqueue(mail: Mail) -> None:
    """Hand the mail to a Celery worker now; a broker failure is logged, never raised into a committed change."""
    # Imported here, not for a cycle: Celery and kombu (about 8 MiB) load in a process only when it first queues
    # a task (auth_service/__init__.py; test_celery_app holds it).
    from auth_service.celery import app

    try:
        # The body holds a code or token: sealed in the broker, and left out of the worker's log lines.
        app.tasks[SEND_MAIL_TASK].apply_async(
            kwargs={"to": mail.to, "subject": mail.subject, "sealed_body": seal(mail.body)},
            kwargsrepr=repr({"to": mail.to, "subject": mail.subject}),
        )
    except Exception:
        # The change is committed; failing the reply would only invite a retry that changes nothing. The user
        # can ask again (resend, recover), so log it loudly and answer normally.
        log.exception("could not enqueue mail", extra={"subject": mail.subject})


class DevMailBackend(ConsoleBackend):
    """Development: print every message and also keep it as `<timestamp>-<to>.eml` under EMAIL_FILE_PATH."""

    def __init__(self, *args: Any, file_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file_path = Path(file_path or str(settings.EMAIL_FILE_PATH))

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = super().send_messages(email_messages)
        if not email_messages:
            return sent
        self.file_path.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            self._write(message)
        return len(email_messages)

    def _write(self, message: EmailMessage) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        # The address comes from a user: keep the file name to a safe alphabet (no separators, no "..").
        to = _UNSAFE_FILENAME.sub("_", ",".join(message.to) or "unknown")[:100].replace("..", "_")
        data = message.message().as_bytes()
        with _write_lock:
            for attempt in range(100):
                suffix = f"-{attempt}" if attempt else ""
                try:
                    with (self.file_path / f"{stamp}-{to}{suffix}.eml").open("xb") as handle:
                        handle.write(data)
                    return
                except FileExistsError:
                    continue
        raise FileExistsError(f"could not find a free .eml file name for {stamp}-{to}")
