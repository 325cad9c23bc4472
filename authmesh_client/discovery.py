"""The discovery document (`/.well-known/openid-configuration`), fetched once and refreshed now and then."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from authmesh_client._http import HttpError, get_json

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class DiscoveryError(Exception):
    """The discovery document could not be fetched (and none was fetched before), or lacks what is needed."""


class Fetcher:
    """What every client of the authmesh holds: a timeout for each HTTP request, the clock its cache ages by, and a
    lock so that concurrent callers wait for one fetch."""

    def __init__(self, *, timeout: float, clock: Clock) -> None:
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()


class Discovery(Fetcher):
    """The discovery document at `url`, cached for `ttl` seconds; the last good one is kept if a refresh fails."""

    def __init__(self, url: str, *, ttl: float = 3600.0, timeout: float = 5.0, clock: Clock = time.monotonic) -> None:
        super().__init__(timeout=timeout, clock=clock)
        self.url = url
        self.ttl = ttl
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0

    def document(self) -> dict[str, Any]:
        current = self._document
        if current is not None and self._clock() - self._fetched_at < self.ttl:
            return current
        with self._lock:
            if self._document is not None and self._clock() - self._fetched_at < self.ttl:
                return self._document
            try:
                fetched = get_json(self.url, timeout=self.timeout)
                if not isinstance(fetched, dict) or not all(
                    isinstance(fetched.get(name), str) and fetched[name] for name in ("issuer", "jwks_uri")
                ):
                    raise DiscoveryError(f"{self.url} is not a discovery document (issuer, jwks_uri)")
            except (HttpError, DiscoveryError) as exc:
                if self._document is None:
                    raise DiscoveryError(str(exc)) from exc
                log.warning("authmesh discovery refresh failed; keeping the last document", extra={"error": str(exc)})
                self._fetched_at = self._clock()  # try again after another ttl, not on every call
                return self._document
            self._document, self._fetched_at = fetched, self._clock()
            return fetched

    def get(self, name: str) -> str:
        """One URL or name of the document (`issuer`, `jwks_uri`, `token_endpoint`)."""
        value = self.document().get(name)
        if not isinstance(value, str) or not value:
            raise DiscoveryError(f"the discovery document at {self.url} has no {name!r}")
        return value
