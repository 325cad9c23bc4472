"""OAuth 2.0 client credentials (service accounts): the scopes, the error codes and the clients' liveness keys."""

from __future__ import annotations

from common.contracts import subjects
from common.contracts.rpc import Contract, Message, Text

# The scopes a service account may hold; a gateway route names one of them to admit client tokens, and the
# discovery document lists them all (`scopes_supported`). `users:read`: `GET /api/user` and `GET /api/user/{id}`.
USERS_READ = "users:read"
SCOPES = (USERS_READ,)

# RFC 6749 §5.2 error codes, the `code` of the auth service's errors on the token subject.
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNAUTHORIZED_CLIENT = "unauthorized_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
INVALID_SCOPE = "invalid_scope"
ERRORS = (INVALID_REQUEST, INVALID_CLIENT, INVALID_GRANT, UNAUTHORIZED_CLIENT, UNSUPPORTED_GRANT_TYPE, INVALID_SCOPE)

GRANT_CLIENT_CREDENTIALS = "client_credentials"

CLIENT_PREFIX = "oauthclient:"


def client_key(client_id: str) -> str:
    """The client's current epoch while it is enabled (absent while disabled), written by the auth service.

    A client token carries the epoch it was issued under (`cep`); the gateway accepts it only while this key holds
    that same value: disabling deletes the key, rotating the secret (or disabling) bumps the epoch.
    """
    return f"{CLIENT_PREFIX}{client_id}"


class TokenRequest(Message):
    """A client authenticated by the gateway's token endpoint (HTTP Basic or the body), asking for `scope`."""

    client_id: Text
    client_secret: Text
    scope: Text | None = None


class IssuedToken(Message):
    access_token: str
    expires_in: int
    scope: str


TOKEN = Contract(subjects.AUTH_OAUTH_TOKEN, TokenRequest, IssuedToken, errors=(400, 401))
