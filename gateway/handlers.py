"""NATS subjects the gateway answers: none of its own (log-level and health come with every bridge)."""

from __future__ import annotations

from common.messaging.bridge import Handler

HANDLERS: dict[str, Handler] = {}
