"""The one process list, and the image's entrypoint and compose file held to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.conf.processes import BY_NAME, PROCESSES, Options, argv

REPO_ROOT = Path(__file__).resolve().parents[3]
COMPOSE = REPO_ROOT / "docker-compose.yml"
# Commands of the image that are not long-running processes of the list.
ONE_SHOT = {"migrate"}


def _compose_services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    return dict(document["services"])


def _image_commands() -> dict[str, str]:
    """Each compose service that runs our image, with the process name its command gives the entrypoint."""
    commands = {}
    for name, service in _compose_services().items():
        if service.get("image") == "authmesh:latest":
            command = service.get("command") or ["gateway"]
            commands[name] = command[0]
    return commands


def test_every_compose_process_is_one_of_the_list() -> None:
    commands = _image_commands()
    assert commands, "the compose file runs no service from the image"
    assert set(commands.values()) - ONE_SHOT <= set(BY_NAME)


def test_the_default_compose_stack_runs_every_process_once_and_one_scheduler() -> None:
    default = {
        name: command
        for name, command in _image_commands().items()
        if "profiles" not in _compose_services()[name] and command not in ONE_SHOT
    }
    # Plain workers are the way to scale out; the default stack runs the scheduling one.
    expected = {process.name for process in PROCESSES} - {"auth-worker"}
    assert sorted(default.values()) == sorted(expected)
    assert [command for command in default.values() if BY_NAME[command].beat] == ["auth-worker-beat"]


@pytest.mark.parametrize("process", PROCESSES, ids=lambda process: process.name)
def test_every_process_has_a_command_line(process: Any) -> None:
    command = argv(process, Options(bin_dir=Path("/venv/bin")), port=9000, instance="x")
    assert command[0].startswith("/venv/bin/")
    if process.kind == "http":
        assert f"{process.service.package}.wsgi:application" in command
        assert command[command.index("--port") + 1] == "9000"
    elif process.kind == "bridge":
        assert command[1:] == [process.service.manage, "nats_bridge"]
    else:
        assert ("--beat-thread" in command) is process.beat


def test_the_entrypoint_refuses_a_name_not_in_the_list() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "common.conf.processes", "no-such-process"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "usage: python -m common.conf.processes" in result.stderr
    assert "auth-bridge" in result.stderr
