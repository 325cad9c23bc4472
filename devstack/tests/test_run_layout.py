"""The processes `make run` starts, as the supervisor is asked to start them (nothing is launched here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.conf.processes import AUTH
from devstack import run
from devstack.layout import PROFILE_ENV, PROFILES, StackEnv

STACK = StackEnv("postgresql://postgres@127.0.0.1:1/postgres", "redis://127.0.0.1:1/0", "nats://127.0.0.1:1")


def _started(stack: StackEnv) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each process start_processes would start, by name: its argv and environment."""
    started: dict[str, tuple[list[str], dict[str, str]]] = {}
    for name, command, env in run.planned_processes(stack):
        assert name not in started, f"{name} started twice"
        started[name] = (command, env)
    return started


def _layout(monkeypatch: pytest.MonkeyPatch, scale: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    monkeypatch.setattr(run, "SCALE", scale)
    return _started(STACK)


@pytest.mark.parametrize("scale", [1, 3])
def test_exactly_one_worker_schedules_whatever_the_scale(monkeypatch: pytest.MonkeyPatch, scale: int) -> None:
    started = _layout(monkeypatch, scale)
    workers = {name: argv for name, (argv, _) in started.items() if "common.conf.worker" in argv}
    assert len(workers) == scale
    assert [name for name, argv in workers.items() if "--beat-thread" in argv] == ["auth-worker"]
    assert "-s" in workers["auth-worker"]
    # No scheduler process of its own (`celery beat`), and no forked one (`worker -B`).
    assert not any("beat" in argv for argv, _ in started.values())
    assert not any("-B" in argv for argv in workers.values())
    assert len([name for name in started if name.startswith("auth-bridge")]) == scale


def test_every_process_gets_two_malloc_arenas_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    started = _layout(monkeypatch, 1)
    assert {env.get("MALLOC_ARENA_MAX") for _, env in started.values()} == {"2"}
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    started = _layout(monkeypatch, 1)
    assert {env.get("MALLOC_ARENA_MAX") for _, env in started.values()} == {"8"}


def test_profiles_share_no_run_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A `make bench` or `make verify` beside a `make run` must not write the run's pid files, schedule or mail."""
    monkeypatch.setattr(run, "ROOT", tmp_path)
    places: dict[str, set[str]] = {}
    for profile in PROFILES:
        stack = StackEnv(STACK.database_url, STACK.redis_url, STACK.nats_url, profile)
        paths = {str(run.layout(stack).run_dir)}
        for argv, env in _started(stack).values():
            paths |= {env["STATIC_ROOT"], env["EMAIL_FILE_PATH"], env[PROFILE_ENV]}
            if "-s" in argv:
                paths.add(argv[argv.index("-s") + 1])
        places[profile] = paths
    assert places["dev"] >= {
        str(tmp_path / "var" / "run"),
        str(tmp_path / "var" / "run" / "celerybeat-schedule"),
        str(tmp_path / "var" / "mail"),
        str(tmp_path / "var" / "static" / "gateway"),
    }
    assert str(tmp_path / "var" / "bench" / "run" / "celerybeat-schedule") in places["bench"]
    for first in PROFILES:
        for second in PROFILES:
            if first != second:
                assert not places[first] & places[second], (first, second)


def test_every_process_connects_to_nats_as_its_own_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(run, "SCALE", 2)
    stack = StackEnv(STACK.database_url, STACK.redis_url, STACK.nats_url, "dev", str(tmp_path / "credentials"))
    seeds = {name: Path(env["NATS_NKEY_SEED_FILE"]).name for name, (_, env) in _started(stack).items()}
    assert seeds == {
        "gateway-http": "gateway.nk",
        "gateway-http-2": "gateway.nk",
        "auth-http": "auth-http.nk",
        "main-http": "main-http.nk",
        "auth-bridge": "auth-bridge.nk",
        "auth-bridge-2": "auth-bridge.nk",
        "main-bridge": "main-bridge.nk",
        "main-bridge-2": "main-bridge.nk",
        "auth-worker": "auth-worker.nk",
        "auth-worker-2": "auth-worker.nk",
    }
    # The set-up commands (migrate, provision_streams, seed) act as the operator.
    assert run._env(stack, AUTH)["NATS_NKEY_SEED_FILE"] == str(tmp_path / "credentials" / "operator.nk")
