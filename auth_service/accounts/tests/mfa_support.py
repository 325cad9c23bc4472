"""Helpers of the second-factor tests: enrol TOTP through the bridge, make codes of a given step, log in."""

from __future__ import annotations

import time
from typing import Any

from auth_service.accounts.models import User
from auth_service.accounts.otp import TOTP_INTERVAL_SECONDS, totp_code, totp_step
from auth_service.accounts.tests.conftest import AuthApi, agent_of
from auth_service.accounts.tests.factories import PASSWORD
from common.contracts import subjects

CLIENT = {"ip": "10.0.0.1", "user_agent": "pytest-agent"}


def fresh_step() -> int:
    """The current step, waited for when it ends within 3 s: the server then sees the step the test computed."""
    if TOTP_INTERVAL_SECONDS - time.time() % TOTP_INTERVAL_SECONDS < 3:
        time.sleep(TOTP_INTERVAL_SECONDS - time.time() % TOTP_INTERVAL_SECONDS + 0.1)
    return totp_step(time.time())


def code_at(secret: str, offset: int = 0) -> str:
    """The code of the step `offset` steps from the current one."""
    return totp_code(secret, step=fresh_step() + offset)


def setup(auth: AuthApi, user: User) -> dict[str, Any]:
    reply: dict[str, Any] = auth(subjects.AUTH_TOTP_SETUP, agent=agent_of(user), client=CLIENT)
    return reply


def enrol(auth: AuthApi, user: User, *, offset: int = 0) -> tuple[str, list[str]]:
    """TOTP set up and confirmed with the code `offset` steps away: its secret and the recovery codes."""
    secret = setup(auth, user)["secret"]
    reply = auth(subjects.AUTH_TOTP_CONFIRM, {"code": code_at(secret, offset)}, agent=agent_of(user), client=CLIENT)
    return secret, reply["recoveryCodes"]


def login(auth: AuthApi, user: User, password: str = PASSWORD, *, ip: str = "10.0.0.1") -> Any:
    return auth(subjects.AUTH_LOGIN, {"slug": user.email, "password": password}, client={**CLIENT, "ip": ip})


def login_mfa(auth: AuthApi, token: str, *, ip: str = "10.0.0.1", **factor: str) -> Any:
    return auth(subjects.AUTH_LOGIN_MFA, {"mfaToken": token, **factor}, client={**CLIENT, "ip": ip})


def status(auth: AuthApi, user: User) -> Any:
    return auth(subjects.AUTH_MFA_STATUS, agent=agent_of(user), client=CLIENT)
