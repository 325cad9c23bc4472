"""main_api's subjects: reads of the users read model (docs/CONTRACTS.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from common.contracts import subjects
from common.contracts.auth import SeedDone
from common.contracts.rpc import Contract, Empty, Message, Text
from common.contracts.users import UserPage, UserPublic

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_OFFSET = 2**31 - 1


class UserListQuery(Message):
    """`GET /api/user`'s query: a page (oldest first), optionally only active or verified users."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    offset: Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)] = 0
    active: bool | None = None
    verified: bool | None = None


class UserFind(Message):
    # Any text: an id that is not a UUID names no user, and is answered 404 like an unknown one.
    id: Text


USER_FIND_ALL = Contract(subjects.USER_FIND_ALL, UserListQuery, UserPage, errors=(400,))
USER_FIND_ONE = Contract(subjects.USER_FIND_ONE, UserFind, UserPublic, errors=(400, 404))
SEED = Contract(subjects.MAIN_SEED, Empty, SeedDone)
