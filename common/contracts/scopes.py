"""OAuth 2.0 scopes of service-account (client credentials) tokens: the names the gateway's routes may require."""

from __future__ import annotations

# Read the users (`GET /api/user`, `GET /api/user/{id}`).
USERS_READ = "users:read"

# Every scope a client may be granted, as the discovery document lists them (`scopes_supported`).
SCOPES = (USERS_READ,)
