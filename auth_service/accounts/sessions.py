"""Refresh sessions in Redis (the keys of common/contracts/sessions.py): create, rotate, list and end them.

Only digests of a session's `check` values are stored. The gateway treats an access token as live only while
`sess:<sid>` exists, so deleting that key is what ends a session everywhere at once.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django_redis import get_redis_connection
from redis import Redis
from redis.commands.core import Script

from common.contracts.sessions import SESSION_PREFIX, session_key, user_sessions_key

DEVICE_MAX_LENGTH = 200

# Atomic, so a session created concurrently is either ended with the others or stays listed (never orphaned).
# ARGV[2] is a sid to keep ("" for none).
_END_ALL = """
local ended = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if sid ~= ARGV[2] then
    ended = ended + redis.call('DEL', ARGV[1] .. sid)
    redis.call('SREM', KEYS[1], sid)
  end
end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) end
return ended
"""


# Compare-and-swap of a session's check in one round trip (atomic: no other command runs in between).
# KEYS[1] the session; ARGV: presented digest, new digest, now, prev_until, last_used, ip ("" keeps it).
# The digests are compared in time independent of where they differ, like digests_equal.
_ROTATE = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'check', 'prev', 'prev_until', 'exp')
if not s[1] then return {'missing'} end
local function same(a, b)
  if not a or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return diff == 0
end
local outcome
if same(s[2], ARGV[1]) then
  outcome = 'rotated'
elseif s[3] and s[3] ~= '' and same(s[3], ARGV[1]) and tonumber(ARGV[3]) < (tonumber(s[4]) or 0) then
  outcome = 'grace'
else
  return {'reused', s[1]}
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'check', ARGV[2], 'prev', s[2], 'prev_until', ARGV[4], 'last_used', ARGV[5],
    'ip', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'check', ARGV[2], 'prev', s[2], 'prev_until', ARGV[4], 'last_used', ARGV[5])
end
return {outcome, s[1], s[5] or '0'}
"""


_rotate: Script | None = None


class Rotation(enum.Enum):
    ROTATED = "rotated"  # the presented token was the current one
    GRACE = "grace"  # the immediately previous one, within the grace period (a lost reply, two tabs racing)
    REUSED = "reused"  # an older one: whoever holds it may have stolen it
    MISSING = "missing"  # no such live session


@dataclass(frozen=True)
class RotationResult:
    outcome: Rotation
    user_id: str = ""
    expires_at: int = 0


@dataclass(frozen=True)
class SessionInfo:
    sid: str
    user_id: str
    device: str
    ip: str
    created: float
    last_used: float
    expires_at: int


def _redis() -> Redis:
    return get_redis_connection("default")


def _text(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in raw.items()
    }


def _info(sid: str, data: dict[str, str]) -> SessionInfo:
    return SessionInfo(
        sid=sid,
        user_id=data.get("uid", ""),
        device=data.get("device", ""),
        ip=data.get("ip", ""),
        created=float(data.get("created") or 0),
        last_used=float(data.get("last_used") or 0),
        expires_at=int(data.get("exp") or 0),
    )


def session_store_create(*, user_id: str, check_digest: str, expires_at: int, device: str, ip: str) -> str:
    """Store a new session family; it lives until its absolute expiry, however often it is rotated."""
    sid = str(uuid.uuid4())
    now = time.time()
    key = session_key(sid)
    pipe = _redis().pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "uid": user_id,
            "check": check_digest,
            "prev": "",
            "prev_until": "0",
            "exp": str(expires_at),
            "created": f"{now:.3f}",
            "last_used": f"{now:.3f}",
            "device": device[:DEVICE_MAX_LENGTH],
            "ip": ip,
        },
    )
    pipe.expireat(key, expires_at)
    pipe.sadd(user_sessions_key(user_id), sid)
    # Every family lives at most the full refresh lifetime, so this outlives each member it indexes.
    pipe.expireat(user_sessions_key(user_id), max(expires_at, int(now)))
    pipe.execute()
    return sid


def session_store_rotate(
    *, sid: str, presented_digest: str, new_digest: str, grace_seconds: float, ip: str | None
) -> RotationResult:
    """Compare-and-swap the session's current check: the presented digest must be current (or previous, in grace).

    After a grace rotation the previous token is the one that was current, so the other racing client still gets
    its grace, and the token before it no longer does.
    """
    global _rotate
    r = _redis()
    if _rotate is None:
        # EVALSHA, with the script loaded again by redis-py if the server has lost it.
        _rotate = r.register_script(_ROTATE)
    now = time.time()
    reply = _rotate(
        keys=[session_key(sid)],
        args=[presented_digest, new_digest, f"{now:.3f}", f"{now + grace_seconds:.3f}", f"{now:.3f}", ip or ""],
        client=r,
    )
    outcome = Rotation(_str(reply[0]))
    if outcome is Rotation.MISSING:
        return RotationResult(outcome)
    if outcome is Rotation.REUSED:
        return RotationResult(outcome, user_id=_str(reply[1]))
    return RotationResult(outcome, user_id=_str(reply[1]), expires_at=int(_str(reply[2]) or 0))


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def session_store_get(sid: str) -> SessionInfo | None:
    data = _text(_redis().hgetall(session_key(sid)))
    return _info(sid, data) if data else None


def session_store_list(user_id: str) -> list[SessionInfo]:
    """The user's live sessions, oldest first; index entries of sessions that expired are pruned on the way."""
    r = _redis()
    sids = sorted(s.decode() if isinstance(s, bytes) else str(s) for s in r.smembers(user_sessions_key(user_id)))
    if not sids:
        return []
    pipe = r.pipeline(transaction=False)
    for sid in sids:
        pipe.hgetall(session_key(sid))
    sessions: list[SessionInfo] = []
    stale: list[str] = []
    for sid, raw in zip(sids, pipe.execute(), strict=True):
        if raw:
            sessions.append(_info(sid, _text(raw)))
        else:
            stale.append(sid)
    if stale:
        r.srem(user_sessions_key(user_id), *stale)
    return sorted(sessions, key=lambda s: (s.created, s.sid))


def session_store_delete(*, user_id: str, sid: str) -> bool:
    pipe = _redis().pipeline(transaction=True)
    pipe.delete(session_key(sid))
    pipe.srem(user_sessions_key(user_id), sid)
    deleted, _ = pipe.execute()
    return bool(deleted)


def session_store_delete_all(user_id: str, *, keep_sid: str | None = None) -> int:
    """End every session of the user except `keep_sid`; returns how many live sessions were ended."""
    script = _redis().register_script(_END_ALL)
    return int(script(keys=[user_sessions_key(user_id)], args=[SESSION_PREFIX, keep_sid or ""]))
