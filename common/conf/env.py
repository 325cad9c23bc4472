"""The one reader of the environment: plain values, `NAME_FILE` secrets, booleans, numbers, URLs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def env(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the file named by NAME_FILE (docker secrets), else the default."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_required(name: str) -> str:
    value = env(name)
    if value is None:
        raise ImproperlyConfigured(f"The environment variable {name} (or {name}_FILE) must be set.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {value!r}.")


def _env_number(name: str, default: T, parse: Callable[[str], T], kind: str) -> T:
    value = env(name)
    if value is None:
        return default
    try:
        return parse(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}.") from exc


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = env(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def service_database_url(service: str) -> str:
    """The service's own database: `<SERVICE>_DATABASE_URL`, else DATABASE_URL's server with the service's db name.

    DATABASE_URL names a server; each service keeps its own database on it (`gateway`, `auth`, `main`,
    or `<DB_NAME_PREFIX><service>`), so one URL is enough for a development machine.
    """
    own = env(f"{service.upper()}_DATABASE_URL")
    if own:
        return own
    server = env("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    assert server is not None
    name = env(f"{service.upper()}_DB_NAME") or f"{env('DB_NAME_PREFIX', '')}{service}"
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def database_settings(url: str, *, conn_max_age: int = 600) -> dict[str, object]:
    """Django DATABASES entry for a postgres URL (psycopg 3)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"Only PostgreSQL URLs are supported, got scheme {parts.scheme!r}.")
    options: dict[str, object] = {}
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        options[key] = unquote(value)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }
