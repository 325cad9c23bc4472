"""Service-account tokens (OAuth 2.0 client credentials, RFC 6749 §4.4) from the discovered token endpoint, cached."""

from __future__ import annotations

import base64
import time
import urllib.parse
from dataclasses import dataclass

from authmesh_client._http import HttpError, post_form
from authmesh_client.discovery import Clock, Discovery, DiscoveryError, Fetcher


class ServiceTokenError(Exception):
    """No token: the endpoint refused (`error` is the RFC 6749 §5.2 code, e.g. `invalid_client`) or failed."""

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class ServiceToken:
    access_token: str
    scope: str | None
    expires_at: float  # on the client's clock


class ServiceTokenClient(Fetcher):
    """Obtains an access token for a service account and reuses it until `refresh_margin` seconds before it
    expires. Thread-safe: concurrent callers wait for one request. The secret is sent with HTTP Basic
    (`client_secret_basic`) and never logged."""

    def __init__(
        self,
        discovery_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        refresh_margin: float = 30.0,
        timeout: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(timeout=timeout, clock=clock)
        self.discovery = Discovery(discovery_url, timeout=timeout, clock=clock)
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.refresh_margin = refresh_margin
        self._token: ServiceToken | None = None

    def token(self) -> str:
        """A current access token (fetched when there is none or it is about to expire)."""
        current = self._token
        if current is not None and self._clock() < current.expires_at - self.refresh_margin:
            return current.access_token
        with self._lock:
            current = self._token
            if current is None or self._clock() >= current.expires_at - self.refresh_margin:
                current = self._token = self._fetch()
            return current.access_token

    def forget(self) -> None:
        """Drop the cached token (after a 401 from an API: the client was disabled or its secret rotated)."""
        self._token = None

    def _fetch(self) -> ServiceToken:
        try:
            endpoint = self.discovery.get("token_endpoint")
        except DiscoveryError as exc:
            raise ServiceTokenError(str(exc)) from exc
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        started = self._clock()
        try:
            reply = post_form(endpoint, form, headers={"Authorization": self._basic()}, timeout=self.timeout)
        except HttpError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error") if isinstance(body.get("error"), str) else None
            raise ServiceTokenError(f"token endpoint refused: {error or exc}", error=error, status=exc.status) from exc
        return parse_token_reply(reply, requested_at=started)

    def _basic(self) -> str:
        # RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
        pair = f"{urllib.parse.quote_plus(self.client_id)}:{urllib.parse.quote_plus(self._client_secret)}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def __repr__(self) -> str:
        return f"ServiceTokenClient(client_id={self.client_id!r}, scope={self.scope!r})"


def parse_token_reply(reply: object, *, requested_at: float) -> ServiceToken:
    """RFC 6749 §5.1: `access_token`, `token_type` Bearer, `expires_in` seconds (from when it was asked for)."""
    if not isinstance(reply, dict):
        raise ServiceTokenError("token endpoint answered no JSON object")
    token, token_type, expires_in = reply.get("access_token"), reply.get("token_type"), reply.get("expires_in")
    if not isinstance(token, str) or not token:
        raise ServiceTokenError("token endpoint answered no access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise ServiceTokenError(f"token endpoint answered token_type {token_type!r}, not Bearer")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        raise ServiceTokenError("token endpoint answered no positive expires_in")
    scope = reply.get("scope")
    return ServiceToken(
        access_token=token, scope=scope if isinstance(scope, str) else None, expires_at=requested_at + expires_in
    )
