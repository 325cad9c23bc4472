"""NATS subjects main_api answers, and its background JetStream consumer."""

from __future__ import annotations

from common.messaging.bridge import BackgroundTask, Handler

HANDLERS: dict[str, Handler] = {}
BACKGROUND: list[BackgroundTask] = []
