"""No password, hash, code or token in a log line, an outbox payload or a non-token reply."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.core import mail
from django_redis import get_redis_connection

from auth_service.accounts.models import RecoveryToken, User, VerificationCode
from auth_service.accounts.tests.conftest import AuthApi, agent_of, mailed_code, mailed_recovery_token
from auth_service.accounts.tests.factories import PASSWORD, UserFactory
from common.contracts import subjects
from common.contracts.sessions import session_key
from common.outbox.models import OutboxEvent

# LogRecord's own attributes (times, line numbers, thread ids); everything else a record carries is inspected.
STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) - {"msg", "args"}
NEW_PASSWORD = "Brand-New-Secret-42"
THIRD_PASSWORD = "Third-Secret-Word-43"


def test_secrets_never_reach_logs_events_or_user_replies(auth: AuthApi, caplog: pytest.LogCaptureFixture) -> None:
    boss = UserFactory(roles=["sys_admin"])
    secrets: list[str] = [PASSWORD, NEW_PASSWORD, THIRD_PASSWORD]
    replies: list[object] = []
    caplog.set_level(logging.DEBUG)

    replies.append(
        auth(
            subjects.AUTH_SIGNUP,
            {"name": "Jane Doe", "username": "janedoe42", "email": "jane@example.com", "password": PASSWORD},
        )
    )
    secrets.append(mailed_code())
    auth.error(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane@example.com", "code": "999999x"})
    auth(subjects.AUTH_VERIFY_ACCOUNT, {"email": "jane@example.com", "code": secrets[-1]})
    auth.error(subjects.AUTH_LOGIN, {"slug": "jane@example.com", "password": "Wrong-Password-1"})
    login = auth.login("janedoe42")
    secrets += [login["accessToken"], login["refreshToken"]]
    rotated = auth(subjects.AUTH_REVALIDATE, {"refreshToken": login["refreshToken"]})
    secrets += [rotated["accessToken"], rotated["refreshToken"]]
    auth.error(subjects.AUTH_REVALIDATE, {"refreshToken": login["refreshToken"] + "x"})
    jane = User.objects.get(email="jane@example.com")
    replies.append(
        auth(
            subjects.AUTH_USER_UPDATE,
            {"id": str(jane.id), "changes": {"password": NEW_PASSWORD, "oldPassword": PASSWORD}},
            agent=agent_of(jane),
        )
    )
    auth(subjects.AUTH_RECOVER, {"slug": "jane@example.com"})
    secrets.append(mailed_recovery_token())
    auth(subjects.AUTH_RESET_PASSWORD, {"recoveryToken": secrets[-1], "password": THIRD_PASSWORD})
    replies.append(
        auth(
            subjects.AUTH_USER_CREATE,
            {
                "name": "Made By Boss",
                "username": "madebyboss",
                "email": "made@example.com",
                "password": PASSWORD,
                "roles": ["user"],
            },
            agent=agent_of(boss),
        )
    )
    secrets.append(mailed_code())
    # Everything stored in place of a secret is a secret too.
    secrets += list(User.objects.values_list("password", flat=True))
    secrets += list(VerificationCode.objects.values_list("code_hash", flat=True))
    secrets += list(RecoveryToken.objects.values_list("token_hash", flat=True))
    secrets += [
        v.decode() for v in get_redis_connection("default").hmget(session_key(login["sessionId"]), "check", "prev") if v
    ]

    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} "
        + json.dumps({k: v for k, v in record.__dict__.items() if k not in STANDARD}, default=str)
        for record in caplog.records
    )
    events = json.dumps(list(OutboxEvent.objects.values_list("payload", flat=True)))
    user_replies = json.dumps(replies)
    assert len(caplog.records) > 20
    assert OutboxEvent.objects.count() == 5
    assert len(mail.outbox) == 3
    for secret in secrets:
        # A six-digit code must not appear as a number of its own (timestamps have digit runs of their own).
        pattern = re.compile(rf"(?<!\d){re.escape(secret)}(?!\d)")
        match = pattern.search(logged)
        assert match is None, logged[max(0, match.start() - 200) : match.end() + 50]
        assert secret not in events
        assert secret not in user_replies
    for word in ("password", "hash", "code", "token"):
        assert word not in events.lower()
        assert word not in user_replies.lower()
