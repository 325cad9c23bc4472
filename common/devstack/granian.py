"""The HTTP server of each service: granian serving the project's WSGI application and its collected static files."""

from __future__ import annotations

import sys
from pathlib import Path

# The Python package holding each service's wsgi.py.
WSGI_PACKAGES = {"gateway": "gateway", "auth": "auth_service", "main": "main_api"}


def granian_argv(service: str, *, host: str, port: int, workers: str, static_dir: Path) -> list[str]:
    """argv of one HTTP server (`make run`, the e2e stack with http=True); granian is installed beside Python."""
    return [
        str(Path(sys.executable).parent / "granian"),
        "--interface", "wsgi", f"{WSGI_PACKAGES[service]}.wsgi:application",
        "--host", host, "--port", str(port),
        "--workers", workers,
        "--blocking-threads", "4",
        "--static-path-route", "/static",
        "--static-path-mount", str(static_dir),
        "--no-ws",
    ]  # fmt: skip
