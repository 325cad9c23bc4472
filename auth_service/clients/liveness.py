"""The clients' liveness markers in Redis (common/contracts/oauth.py `client_key`), read by the gateway.

A marker only ever moves up (`client_mark`): a token request that read a client just before its secret was
rotated cannot put the older epoch back. Disabling deletes it; a token request that raced a disabling takes its
own write back (`client_unmark_stale`).
"""

from __future__ import annotations

from django_redis import get_redis_connection

from common.contracts.oauth import client_key

_MARK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""
_UNMARK_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def client_mark(client_id: str, epoch: int) -> None:
    """The client is live at `epoch` (or at a higher one already marked)."""
    get_redis_connection("default").eval(_MARK, 1, client_key(client_id), epoch)


def client_unmark(client_id: str) -> None:
    """Every token of the client is refused from now on."""
    get_redis_connection("default").delete(client_key(client_id))


def client_unmark_stale(client_id: str, epoch: int) -> None:
    """Undo a `client_mark(client_id, epoch)` that turned out stale, unless a newer epoch was marked since."""
    get_redis_connection("default").eval(_UNMARK_IF, 1, client_key(client_id), epoch)
