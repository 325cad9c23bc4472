"""Redis keys of refresh sessions, shared by the auth service (writer) and the gateway (liveness check)."""

from __future__ import annotations

SESSION_PREFIX = "sess:"
USER_SESSIONS_PREFIX = "usess:"


def session_key(sid: str) -> str:
    """Hash of one live session; its existence is what makes an access token carrying this sid valid."""
    return f"{SESSION_PREFIX}{sid}"


def user_sessions_key(user_id: str) -> str:
    """Set of the user's live session ids (for listing and for ending them all)."""
    return f"{USER_SESSIONS_PREFIX}{user_id}"


USER_EPOCH_PREFIX = "uepoch:"


def user_epoch_key(user_id: str) -> str:
    """The user's credential epoch (an integer, 0 while absent), bumped by every change that must end sessions or
    tokens: reset, password change, role change, deactivation, deletion, "end all sessions".

    A session stores the epoch it was opened (or last confirmed) under in its `ep` field, and the lowest access-token
    epoch it still accepts in `tmin`; the gateway and refresh accept a session only while `ep` equals this value.
    """
    return f"{USER_EPOCH_PREFIX}{user_id}"
