"""Refresh sessions in Redis (the keys of common/contracts/sessions.py): create, rotate, list and end them.

Only digests of a session's `check` values are stored. The gateway treats an access token as live only while
`sess:<sid>` exists, belongs to the token's subject and carries the user's current credential epoch (`ep`), and the
token's own epoch is not below the session's `tmin`; so deleting that key, or bumping the user's epoch, ends a
session everywhere at once.
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

from common.contracts.sessions import SESSION_PREFIX, session_key, user_epoch_key, user_sessions_key

DEVICE_MAX_LENGTH = 200

# Bump the user's credential epoch and apply it to the user's sessions, atomically (a session created concurrently
# is either ended with the others or carries the new epoch, never orphaned).
# KEYS[1] the user's session set, KEYS[2] the user's epoch. ARGV[1] the session key prefix, ARGV[2] a sid to keep
# ("" for none), ARGV[3] "1" to end the sessions (but the kept one), ARGV[4] "1" to refuse the access tokens issued
# before the bump (the surviving sessions' `tmin`). A surviving session takes the new epoch, so its refresh goes on.
_BUMP = """
local epoch = redis.call('INCR', KEYS[2])
local ended = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. sid
  if ARGV[3] == '1' and sid ~= ARGV[2] then
    ended = ended + redis.call('DEL', key)
    redis.call('SREM', KEYS[1], sid)
  elseif redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'ep', epoch)
    if ARGV[4] == '1' then redis.call('HSET', key, 'tmin', epoch) end
  else
    redis.call('SREM', KEYS[1], sid)
  end
end
if ARGV[3] == '1' and ARGV[2] == '' then redis.call('DEL', KEYS[1]) end
return ended
"""

# A new session, only if the user's epoch is still the one the login read before confirming the credentials: a
# login that raced a reset (or a deactivation, a role change...) opens nothing. KEYS: the session, the user's set,
# the user's epoch. ARGV[1] the expected epoch, ARGV[2] expiry (epoch seconds), ARGV[3] the sid, then the session's
# field/value pairs.
_CREATE = """
if tonumber(redis.call('GET', KEYS[3]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
-- Every family lives at most the full refresh lifetime, so this outlives each member it indexes.
redis.call('EXPIREAT', KEYS[2], ARGV[2])
return 1
"""

# Compare-and-swap of a session's check in one round trip (atomic: no other command runs in between).
# KEYS[1] the session, KEYS[2] the epoch of the refresh token's subject. ARGV: presented digest, new digest, now,
# prev_until, ip ("" keeps it), the refresh token's subject, the epoch the new tokens carry, the sealed new tokens.
# The session must belong to the subject and carry the user's epoch; the digests are compared in time independent
# of where they differ, like digests_equal. A rotation stores the sealed tokens it issues, and the previous token,
# presented within the grace period, gets those same tokens back (nothing new is minted, the family cannot fork).
_ROTATE = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'check', 'prev', 'prev_until', 'exp', 'ep', 'replay')
if not s[1] then return {'missing'} end
if s[1] ~= ARGV[6] then return {'mismatch', s[1]} end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(s[6] or '0') ~= current then return {'stale', s[1]} end
local function same(a, b)
  if not a or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return diff == 0
end
if same(s[2], ARGV[1]) then
  if tonumber(ARGV[7]) ~= current then return {'moved', s[1]} end
  local fields = {'check', ARGV[2], 'prev', s[2], 'prev_until', ARGV[4], 'last_used', ARGV[3], 'replay', ARGV[8]}
  if ARGV[5] ~= '' then table.insert(fields, 'ip'); table.insert(fields, ARGV[5]) end
  redis.call('HSET', KEYS[1], unpack(fields))
  return {'rotated', s[1], s[5] or '0'}
end
if s[3] and s[3] ~= '' and same(s[3], ARGV[1]) and tonumber(ARGV[3]) < (tonumber(s[4]) or 0) then
  return {'grace', s[1], s[5] or '0', s[7] or ''}
end
return {'reused', s[1]}
"""


class Rotation(enum.Enum):
    ROTATED = "rotated"  # the presented token was the current one
    GRACE = "grace"  # the immediately previous one, within the grace period (a lost reply, two tabs racing)
    REUSED = "reused"  # an older one: whoever holds it may have stolen it
    MISSING = "missing"  # no such live session
    MISMATCH = "mismatch"  # the session belongs to another user than the token's subject (a forged token)
    STALE = "stale"  # the session predates the user's current credential epoch (a login that raced a reset)
    MOVED = "moved"  # the epoch changed between reading it and rotating: the new tokens carry an old one


@dataclass(frozen=True)
class RotationResult:
    outcome: Rotation
    user_id: str = ""
    expires_at: int = 0
    replay: str = ""  # GRACE: the sealed tokens of the rotation that made the presented token the previous one


@dataclass(frozen=True)
class SessionInfo:
    sid: str
    user_id: str
    device: str
    ip: str
    created: float
    last_used: float
    expires_at: int


_scripts: dict[str, Script] = {}


def _redis() -> Redis:
    return get_redis_connection("default")


def _script(r: Redis, source: str) -> Script:
    # EVALSHA, with the script loaded again by redis-py if the server has lost it.
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = r.register_script(source)
    return script


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(raw: dict[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in raw.items()}


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


def credential_epoch_get(user_id: str) -> int:
    """The user's current credential epoch (0 until the first bump)."""
    return int(_redis().get(user_epoch_key(user_id)) or 0)


def credential_epoch_bump(
    user_id: str, *, end_sessions: bool, keep_sid: str | None = None, revoke_tokens: bool = False
) -> int:
    """Move the user to a new credential epoch; returns how many live sessions were ended.

    `end_sessions` ends every session but `keep_sid`; `revoke_tokens` makes every access token issued so far
    useless at once while the surviving sessions go on (their next refresh issues tokens of the new epoch).
    """
    r = _redis()
    ended = _script(r, _BUMP)(
        keys=[user_sessions_key(user_id), user_epoch_key(user_id)],
        args=[SESSION_PREFIX, keep_sid or "", "1" if end_sessions else "0", "1" if revoke_tokens else "0"],
        client=r,
    )
    return int(ended)


def session_store_create(
    *, user_id: str, check_digest: str, expires_at: int, device: str, ip: str, epoch: int
) -> str | None:
    """Store a new session family under `epoch`; None when the user's epoch has moved on since it was read.

    The family lives until its absolute expiry, however often it is rotated.
    """
    sid = str(uuid.uuid4())
    now = time.time()
    fields = {
        "uid": user_id,
        "check": check_digest,
        "prev": "",
        "prev_until": "0",
        "exp": str(expires_at),
        "created": f"{now:.3f}",
        "last_used": f"{now:.3f}",
        "device": device[:DEVICE_MAX_LENGTH],
        "ip": ip,
        "ep": str(epoch),
        "tmin": str(epoch),
    }
    r = _redis()
    created = _script(r, _CREATE)(
        keys=[session_key(sid), user_sessions_key(user_id), user_epoch_key(user_id)],
        args=[str(epoch), str(max(expires_at, int(now))), sid, *(item for pair in fields.items() for item in pair)],
        client=r,
    )
    return sid if int(created) else None


def session_store_rotate(
    *,
    sid: str,
    user_id: str,
    presented_digest: str,
    new_digest: str,
    grace_seconds: float,
    ip: str | None,
    epoch: int,
    replay: str,
) -> RotationResult:
    """Compare-and-swap the session's current check: the presented digest must be current (or previous, in grace).

    `user_id` is the refresh token's subject, `epoch` the one the new tokens carry and `replay` those tokens,
    sealed for whoever holds the presented token: a grace presentation of it gets them back.
    """
    r = _redis()
    now = time.time()
    reply = _script(r, _ROTATE)(
        keys=[session_key(sid), user_epoch_key(user_id)],
        args=[
            presented_digest,
            new_digest,
            f"{now:.3f}",
            f"{now + grace_seconds:.3f}",
            ip or "",
            user_id,
            epoch,
            replay,
        ],
        client=r,
    )
    outcome = Rotation(_str(reply[0]))
    if outcome is Rotation.MISSING:
        return RotationResult(outcome)
    owner = _str(reply[1])
    if outcome in (Rotation.ROTATED, Rotation.GRACE):
        replayed = _str(reply[3]) if outcome is Rotation.GRACE else ""
        return RotationResult(outcome, user_id=owner, expires_at=int(_str(reply[2]) or 0), replay=replayed)
    return RotationResult(outcome, user_id=owner)


def session_store_get(sid: str) -> SessionInfo | None:
    data = _text(_redis().hgetall(session_key(sid)))
    return _info(sid, data) if data else None


def session_store_list(user_id: str) -> list[SessionInfo]:
    """The user's live sessions, oldest first; index entries of sessions that expired are pruned on the way."""
    r = _redis()
    sids = sorted(_str(s) for s in r.smembers(user_sessions_key(user_id)))
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
    """End every session of the user except `keep_sid`, moving the user to a new credential epoch (which also ends
    the user's admin-console sessions, see User.get_session_auth_hash); returns how many live sessions were ended."""
    return credential_epoch_bump(user_id, end_sessions=True, keep_sid=keep_sid)
