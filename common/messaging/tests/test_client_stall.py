"""The request/reply client survives a stalled NATS server, even when readiness was probed during the stall."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.contracts.errors import ServiceUnavailable
from common.messaging.client import NatsClient
from devstack.testing.stack import StackProcess, start_private_nats, stop_processes


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[tuple[str, StackProcess]]:
    # A server of its own: the test freezes it, which must not stall anything else.
    url, process = start_private_nats(tmp_path, tmp_path)
    try:
        yield url, process
    finally:
        os.kill(process.popen.pid, signal.SIGCONT)
        stop_processes([process])


def test_readiness_probe_during_a_stall_does_not_wedge_the_connection(private_nats: tuple[str, StackProcess]) -> None:
    url, process = private_nats
    client = NatsClient(url, name="stall-test")
    try:
        assert client.is_connected()
        os.kill(process.popen.pid, signal.SIGSTOP)
        try:
            assert not client.is_connected()
        finally:
            os.kill(process.popen.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.is_connected()
        # A live connection gets the server's "no responders" at once; a wedged one (read loop dead since the
        # stall) would time out instead (504).
        with pytest.raises(ServiceUnavailable):
            client.request("nobody.serves.this", {}, timeout=2)
    finally:
        client.close()
