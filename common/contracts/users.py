"""The user as every other party sees it, written once: the auth service's replies and event snapshots, main_api's
read model (its SQL is checked against this shape by main_api/users/tests/test_user_shape.py), and the gateway's
documented reply (gateway/api/serializers.py derives its serializer from it). Never a password, hash, code or token.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import msgspec

from common.contracts.roles import ROLES
from common.contracts.rpc import Message

# ISO 8601. The auth service writes UTC with milliseconds and a Z, as the original's clients (JavaScript Date)
# produce and parse; a reader accepts any RFC 3339 date-time (no offset: UTC).
TIMESTAMP_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?$")
Timestamp = Annotated[str, msgspec.Meta(pattern=TIMESTAMP_PATTERN.pattern, extra_json_schema={"format": "date-time"})]
# Who may be called what, for whoever checks it (the gateway at the door, the auth service's policy): 4 to 40
# letters in words of letters separated by spaces; a username is 4 to 40 ASCII letters and digits, an identifier
# people type and compare, where look-alike Unicode letters would allow impersonation ("admin" with a Cyrillic a).
NAME_LENGTH = (4, 40)
NAME_PATTERN = re.compile(r"^[^\W\d_]+(?: +[^\W\d_]+)*$")
USERNAME_LENGTH = (4, 40)
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9]+$")

MAX_NAME = 150
MAX_USERNAME = 150
MAX_EMAIL = 254
MAX_ROLE = 30
MAX_VERSION = 2**63 - 1
# PostgreSQL cannot store NUL in text: a value holding one is refused before it gets there.
_NO_NUL = "^[^\x00]*$"
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME, pattern=_NO_NUL)]
Username = Annotated[str, msgspec.Meta(max_length=MAX_USERNAME, pattern=_NO_NUL)]
Email = Annotated[str, msgspec.Meta(max_length=MAX_EMAIL, pattern=_NO_NUL, extra_json_schema={"format": "email"})]
Role = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_ROLE, pattern=_NO_NUL, extra_json_schema={"enum": list(ROLES)})
]
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]


class UserPublic(Message):
    """`GET /api/user/{id}`, the items of `GET /api/user`, and the replies of the user writes."""

    id: uuid.UUID
    name: Name
    username: Username
    email: Email
    roles: list[Role]
    verified_account: bool
    active: bool
    created_at: Timestamp
    updated_at: Timestamp


class UserPage(Message):
    """`GET /api/user`: one page of users, oldest first, and how many match in all."""

    limit: int
    offset: int
    total: int
    results: list[UserPublic]


USER_FIELDS = msgspec.structs.fields(UserPublic)
USER_FIELD_NAMES = tuple(field.encode_name for field in USER_FIELDS)
