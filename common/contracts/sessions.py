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
