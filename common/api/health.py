"""`/healthz` (the process is alive) and `/readyz` (its dependencies answer; names the one that does not)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

log = logging.getLogger(__name__)

Check = Callable[[], None]


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()


def check_nats() -> None:
    from common.messaging.client import get_client

    if not get_client().is_connected():
        raise ConnectionError("not connected")


def service_check(service: str) -> Check:
    """A check that the named service's bridge answers over NATS (used by the gateway)."""

    def check() -> None:
        from common.contracts import subjects
        from common.messaging.client import get_client

        get_client().request(subjects.health(service), {}, timeout=2.0)

    return check


def default_checks() -> dict[str, Check]:
    checks: dict[str, Check] = {"redis": check_redis, "nats": check_nats}
    if connection.settings_dict.get("ENGINE") != "django.db.backends.dummy":
        # The gateway has no database; Django gives it the dummy backend, which has nothing to check.
        checks = {"database": check_database, **checks}
    return checks


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "service": settings.SERVICE_NAME})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Check] = default_checks()
    for service in settings.READINESS_SERVICES:
        checks[service] = service_check(service)
    results: dict[str, Any] = {}
    failing: list[str] = []
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a readiness probe reports any failure by name
            results[name] = f"fail: {type(exc).__name__}"
            failing.append(name)
            log.warning("readiness check failed", extra={"check": name, "error": str(exc)[:200]})
    if failing:
        body = {
            "statusCode": 503,
            "error": "Service Unavailable",
            "message": f"not ready: {', '.join(failing)}",
            "checks": results,
        }
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "service": settings.SERVICE_NAME, "checks": results})
