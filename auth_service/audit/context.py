"""Where the current request comes from (IP, user agent): set at the auth service's edges, read by the security log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from common.contracts.envelope import ClientInfo

# Set per request by the NATS handlers and by ClientContextMiddleware (admin), so services record the caller's
# origin without every service signature carrying it; empty for Celery tasks and commands.
client_var: ContextVar[ClientInfo | None] = ContextVar("audit_client", default=None)


@contextmanager
def client_context(*, ip: str | None, user_agent: str | None) -> Iterator[None]:
    token = client_var.set(ClientInfo(ip=ip, user_agent=user_agent))
    try:
        yield
    finally:
        client_var.reset(token)
