"""The auth service's subjects: what each one takes and answers (docs/CONTRACTS.md).

The gateway encodes with these contracts and the auth bridge decodes with them; the policies (password strength,
name and e-mail rules, the permission matrix) stay in the auth service, which owns them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec

from common.contracts import subjects
from common.contracts.rpc import Contract, Empty, Message, Text
from common.contracts.users import Timestamp, UserPublic

Roles = Annotated[list[Text], msgspec.Meta(max_length=10)]


# -- requests ------------------------------------------------------------------------------------------------------


class Signup(Message):
    name: Text
    username: Text
    email: Text
    password: Text


class VerifyAccount(Message):
    email: Text
    code: Text


class EmailOnly(Message):
    email: Text


class Login(Message):
    slug: Text
    password: Text


class RefreshToken(Message):
    refresh_token: Text


class Logout(RefreshToken):
    all: bool = False


class SessionRef(Message):
    session_id: Text


class SlugOnly(Message):
    slug: Text


class ResetPassword(Message):
    recovery_token: Text
    password: Text


class DenyAccess(Message):
    user_id: uuid.UUID


class UserCreate(Message):
    name: Text
    username: Text
    email: Text
    password: Text
    roles: Roles


class UserChanges(Message, omit_defaults=True):
    """Only the fields present change; `password` needs `old_password` (the policy says so)."""

    name: Text | None = None
    username: Text | None = None
    email: Text | None = None
    roles: Roles | None = None
    password: Text | None = None
    old_password: Text | None = None

    def present(self) -> dict[str, Any]:
        """The changes as the service function takes them: the given fields, under their wire names."""
        return {key: value for key, value in msgspec.to_builtins(self).items() if value is not None}


class UserUpdate(Message):
    id: uuid.UUID
    changes: UserChanges


class UserRef(Message):
    id: uuid.UUID


# -- replies -------------------------------------------------------------------------------------------------------


class Tokens(Message):
    """A login or refresh: the gateway puts the access token in the body and the refresh token in cookies."""

    access_token: str
    refresh_token: str
    refresh_expires_at: Timestamp
    session_id: str


class MfaChallenge(Message):
    """A login whose password was right, for a user with a second factor: no session yet; finish it with the token
    and one of `methods` (SPEC §2b)."""

    mfa_required: bool
    mfa_token: str
    methods: list[str]


class SessionInfo(Message):
    id: str
    device: str | None
    ip: str | None
    created_at: Timestamp
    last_used_at: Timestamp
    current: bool


class KeySet(Message):
    keys: list[dict[str, Any]]


class SeedDone(Message):
    ok: bool


# -- subjects ------------------------------------------------------------------------------------------------------

SIGNUP = Contract(subjects.AUTH_SIGNUP, Signup, errors=(400, 409, 429))
VERIFY_ACCOUNT = Contract(subjects.AUTH_VERIFY_ACCOUNT, VerifyAccount, errors=(400, 429))
RESEND_VERIFICATION = Contract(subjects.AUTH_RESEND_VERIFICATION, EmailOnly, errors=(400, 429))
LOGIN = Contract(subjects.AUTH_LOGIN, Login, Tokens | MfaChallenge, errors=(400, 401, 429))
REVALIDATE = Contract(subjects.AUTH_REVALIDATE, RefreshToken, Tokens, errors=(400, 401))
LOGOUT = Contract(subjects.AUTH_LOGOUT, Logout, errors=(400, 401))
SESSIONS_LIST = Contract(subjects.AUTH_SESSIONS_LIST, Empty, list[SessionInfo], errors=(401,))
SESSIONS_END = Contract(subjects.AUTH_SESSIONS_END, SessionRef, errors=(401, 404))
RECOVER = Contract(subjects.AUTH_RECOVER, SlugOnly, errors=(400, 429))
RESET_PASSWORD = Contract(subjects.AUTH_RESET_PASSWORD, ResetPassword, errors=(400, 429))
DENY_ACCESS = Contract(subjects.AUTH_DENY_ACCESS, DenyAccess, errors=(400, 401, 403, 404))
JWKS = Contract(subjects.AUTH_JWKS, Empty, KeySet)
USER_CREATE = Contract(subjects.AUTH_USER_CREATE, UserCreate, UserPublic, errors=(400, 401, 403, 409))
USER_UPDATE = Contract(subjects.AUTH_USER_UPDATE, UserUpdate, UserPublic, errors=(400, 401, 403, 404, 409))
USER_DEACTIVATE = Contract(subjects.AUTH_USER_DEACTIVATE, UserRef, UserPublic, errors=(400, 401, 403, 404))
USER_DELETE = Contract(subjects.AUTH_USER_DELETE, UserRef, errors=(401, 403, 404))
SEED = Contract(subjects.AUTH_SEED, Empty, SeedDone)
