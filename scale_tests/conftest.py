"""Scale-suite fixtures: the e2e stack plus a second auth bridge, main bridge and Celery worker; real gateways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.api.tests.e2e import gateway_pointed_at
from scale_tests.support import ScaledStack, gateway_servers, measurements, scaled_stack, write_report


@pytest.fixture(scope="session")
def scaled() -> Iterator[ScaledStack]:
    """Two of every bridge and worker on private NATS and fresh scale_ databases; this process is the gateway."""
    with scaled_stack() as stack, gateway_pointed_at(stack.stack.nats_url):
        yield stack


@pytest.fixture(scope="module")
def gateways(scaled: ScaledStack) -> Iterator[list[int]]:
    """Two gateway HTTP servers (granian, production settings) on loopback; yields their ports."""
    with gateway_servers(scaled, count=2) as servers:
        yield [server.port for server in servers]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the suite measured (the numbers docs/SCALING.md quotes) and keep them in var/scale/latest.json."""
    path = write_report()
    if path is None:
        return
    terminalreporter.section("scale measurements")
    for section, values in measurements.items():
        terminalreporter.write_line(f"{section}: " + ", ".join(f"{key}={value}" for key, value in values.items()))
    terminalreporter.write_line(f"written: {path}")
