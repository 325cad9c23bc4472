"""authmesh_client.ServiceTokenClient against a local stand-in of the token endpoint: RFC 6749 §4.4 request, §5.1
reply, caching until shortly before expiry, §5.2 errors. (The gateway's own endpoint is tested where it is built.)"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from authmesh_client import ServiceTokenClient, ServiceTokenError

CLIENT_ID, SECRET = "billing", "s3cret:with+odd&chars"


@dataclass
class TokenEndpoint:
    base: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    reply: tuple[int, dict[str, Any]] = (200, {})

    @property
    def discovery_url(self) -> str:
        return f"{self.base}/.well-known/openid-configuration"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    state = TokenEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def answer(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            document = {"issuer": state.base, "jwks_uri": f"{state.base}/jwks", "token_endpoint": f"{state.base}/token"}
            self.answer(200, document)

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            state.requests.append(
                {
                    "path": self.path,
                    "authorization": self.headers["Authorization"],
                    "content_type": self.headers["Content-Type"],
                    "form": parse_qs(self.rfile.read(length).decode()),
                }
            )
            self.answer(*state.reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def issued(token: str, expires_in: int = 300) -> tuple[int, dict[str, Any]]:
    return 200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in, "scope": "users:read"}


def test_the_token_is_requested_as_rfc_6749_says_and_reused_until_shortly_before_expiry(
    endpoint: TokenEndpoint,
) -> None:
    clock = Clock()
    client = ServiceTokenClient(endpoint.discovery_url, CLIENT_ID, SECRET, scope="users:read", clock=clock)
    endpoint.reply = issued("first")

    assert client.token() == "first"
    clock.now += 269  # 300 s token, 30 s margin
    assert client.token() == "first"
    assert len(endpoint.requests) == 1
    sent = endpoint.requests[0]
    assert sent["path"] == "/token"
    assert sent["content_type"] == "application/x-www-form-urlencoded"
    assert sent["form"] == {"grant_type": ["client_credentials"], "scope": ["users:read"]}
    # RFC 6749 §2.3.1: each part form-encoded, then Basic.
    assert (
        base64.b64decode(sent["authorization"].removeprefix("Basic ")).decode() == "billing:s3cret%3Awith%2Bodd%26chars"
    )

    endpoint.reply = issued("second")
    clock.now += 1
    assert client.token() == "second"
    assert len(endpoint.requests) == 2
    assert SECRET not in repr(client)


def test_a_refusal_carries_the_oauth_error_code(endpoint: TokenEndpoint) -> None:
    endpoint.reply = (401, {"error": "invalid_client"})
    client = ServiceTokenClient(endpoint.discovery_url, CLIENT_ID, "wrong")

    with pytest.raises(ServiceTokenError) as refused:
        client.token()

    assert (refused.value.error, refused.value.status) == ("invalid_client", 401)


@pytest.mark.parametrize(
    "reply",
    [
        {"access_token": "t", "token_type": "mac", "expires_in": 300},
        {"access_token": "t", "token_type": "Bearer"},
        {"token_type": "Bearer", "expires_in": 300},
    ],
)
def test_a_reply_that_is_no_bearer_token_is_refused(endpoint: TokenEndpoint, reply: dict[str, Any]) -> None:
    endpoint.reply = (200, reply)

    with pytest.raises(ServiceTokenError):
        ServiceTokenClient(endpoint.discovery_url, CLIENT_ID, SECRET).token()
