"""Who is calling (client IP, user agent, agent from the token) and the one way a view forwards over NATS."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from common.contracts.envelope import Agent
from common.contracts.rpc import Contract
from common.messaging.client import get_client
from gateway.api.authentication import GatewayUser
from gateway.api.ops import ensure_log_level_listener

_MAX_USER_AGENT = 512


def client_ip(request: HttpRequest | Request) -> str:
    """REMOTE_ADDR, or with TRUSTED_PROXY_HOPS = n the address the outermost trusted proxy saw.

    Only the last n entries of X-Forwarded-For were written by our proxies; anything left of them is whatever
    the client sent, so it is never used (a spoofed header must not buy a fresh throttle bucket).
    """
    remote = str(request.META.get("REMOTE_ADDR") or "")
    hops = int(settings.TRUSTED_PROXY_HOPS)
    if hops > 0:
        forwarded = [part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        forwarded = [part for part in forwarded if part]
        if forwarded:
            candidate = forwarded[-hops] if len(forwarded) >= hops else forwarded[0]
            if _is_ip(candidate):
                return candidate
    return remote


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def client_info(request: HttpRequest | Request) -> dict[str, str | None]:
    user_agent = request.META.get("HTTP_USER_AGENT")
    return {"ip": client_ip(request) or None, "user_agent": str(user_agent)[:_MAX_USER_AGENT] if user_agent else None}


def agent_of(request: HttpRequest | Request) -> Agent | None:
    """The caller as the services see it: id, roles and session from the verified token, plus where it called from."""
    user = getattr(request, "user", None)
    if not isinstance(user, GatewayUser):
        return None
    info = client_info(request)
    return Agent(id=user.id, roles=user.roles, sid=user.sid, ip=info["ip"], user_agent=info["user_agent"])


def forward(
    request: HttpRequest | Request,
    subject: Contract[Any] | str,
    data: Any = None,
    *,
    timeout: float | None = None,
) -> Any:
    """Send one request to the owning service and return its reply data; its errors surface as ServiceError.
    With a contract, the data is encoded with it (what the service would refuse is a 400 here already)."""
    ensure_log_level_listener()
    if isinstance(subject, Contract):
        subject, data = subject.subject, subject.encode(data)
    return get_client().request(
        subject,
        data,
        agent=agent_of(request),
        client=client_info(request),
        timeout=timeout,
    )
