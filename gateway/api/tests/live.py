"""The gateway of this test process served over real HTTP (its WSGI front, as granian serves it), on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.handlers.wsgi import WSGIHandler

from gateway.api.fastlane import LeanFront


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """The gateway's own access log has the request; stderr stays clean."""


@contextmanager
def serving() -> Iterator[str]:
    """Serve the gateway on 127.0.0.1 for the block; yields its base URL (`http://127.0.0.1:<port>`)."""
    server = make_server(
        "127.0.0.1", 0, LeanFront(WSGIHandler()), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="live-gateway", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
