"""Process-wide tuning of the long-running servers (the HTTP workers and the NATS bridges)."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect the start-up garbage, then move every surviving object out of the collector's reach.

    A server builds some hundred thousand objects at start (modules, settings, URL patterns, serializers) that
    live as long as the process; the collector's full passes walked them all, a pause of tens of milliseconds
    every few thousand requests in the gateway. Garbage made before the call is collected first, so nothing
    frozen is unreachable; objects made afterwards are collected as usual.
    """
    gc.collect()
    gc.freeze()
