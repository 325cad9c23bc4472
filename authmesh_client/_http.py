"""The two HTTP calls of the client, on the standard library: a JSON GET and a form POST."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

USER_AGENT = "authmesh-client/1.0"
MAX_BODY = 1024 * 1024


class HttpError(Exception):
    """No answer, or one that is not JSON; `status` and `body` hold what came back, if anything did."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def get_json(url: str, *, timeout: float) -> Any:
    return _exchange(url, None, {}, timeout=timeout)


def post_form(url: str, form: dict[str, str], *, headers: dict[str, str], timeout: float) -> Any:
    """POST `form` (application/x-www-form-urlencoded); the JSON answer. An error status raises HttpError with
    the decoded body when it is JSON (an OAuth error body)."""
    data = urllib.parse.urlencode(form).encode()
    return _exchange(url, data, {"Content-Type": "application/x-www-form-urlencoded", **headers}, timeout=timeout)


def _exchange(url: str, data: bytes | None, headers: dict[str, str], *, timeout: float) -> Any:
    # http(s) only: urllib would also open file: and ftp: URLs.
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise HttpError(f"not an http(s) URL: {url!r}")
    sent = {"Accept": "application/json", "User-Agent": USER_AGENT, **headers}
    request = urllib.request.Request(url, data=data, headers=sent)  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return _read_json(response, url)
    except urllib.error.HTTPError as exc:
        try:
            body = _read_json(exc, url)
        except HttpError:
            body = None
        raise HttpError(f"{url} answered {exc.code}", status=exc.code, body=body) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HttpError(f"{url} could not be reached: {exc}") from exc


def _read_json(response: Any, url: str) -> Any:
    raw = response.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise HttpError(f"{url} answered more than {MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HttpError(f"{url} did not answer JSON", status=getattr(response, "status", None)) from exc
