"""Mail written as .eml files (the auth service's DevMailBackend): find the newest to an address, read its code or token."""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
_RECOVERY_TOKEN = (
    re.compile(r"recovery token is:?\s*(\S+)", re.IGNORECASE),
    re.compile(r"[?&](?:recoveryToken|token)=([^\s&\"'<>]+)"),
)


class MailNotFound(AssertionError):
    """The expected mail did not arrive in time (mail goes out after commit, through Celery)."""


@dataclass(frozen=True)
class ReceivedMail:
    path: Path
    to: tuple[str, ...]
    subject: str
    body: str

    def code(self) -> str:
        """The 6-digit verification code."""
        match = _CODE.search(self.body)
        if not match:
            raise AssertionError(f"no 6-digit code in {self.path.name}: {self.body!r}")
        return match.group(1)

    def recovery_token(self) -> str:
        for pattern in _RECOVERY_TOKEN:
            match = pattern.search(self.body)
            if match:
                return match.group(1)
        raise AssertionError(f"no recovery token in {self.path.name}: {self.body!r}")


def read_mail(path: Path) -> ReceivedMail:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if isinstance(part, EmailMessage) else ""
    recipients = tuple(address.lower() for _, address in getaddresses(message.get_all("To", [])))
    return ReceivedMail(path=path, to=recipients, subject=str(message.get("Subject", "")), body=str(body))


def mails_to(mail_dir: Path, address: str, *, subject: str | None = None) -> list[ReceivedMail]:
    """Every mail to `address` (optionally whose subject contains `subject`), oldest first."""
    wanted = address.lower()
    paths = sorted(mail_dir.glob("*.eml"), key=lambda path: (path.stat().st_mtime_ns, path.name))
    found = []
    for path in paths:
        mail = read_mail(path)
        if wanted in mail.to and (subject is None or subject.lower() in mail.subject.lower()):
            found.append(mail)
    return found


def wait_for_mail(
    mail_dir: Path, address: str, *, subject: str | None = None, count: int = 1, timeout: float = 15.0
) -> ReceivedMail:
    """The newest mail to `address` once at least `count` such mails exist."""
    deadline = time.monotonic() + timeout
    while True:
        found = mails_to(mail_dir, address, subject=subject)
        if len(found) >= count:
            return found[-1]
        if time.monotonic() > deadline:
            raise MailNotFound(
                f"{len(found)} of {count} mail(s) to {address} (subject {subject!r}) after {timeout:.0f} s"
            )
        time.sleep(0.05)
