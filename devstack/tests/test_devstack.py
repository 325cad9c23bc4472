"""Real-server tests of devstack: the stack's lifecycle, the CLI, and the supervisor (no Django needed)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
import psutil
import psycopg
import pytest
import redis

from common.conf.nats_trust import identities
from devstack import (
    Stack,
    StackEnv,
    Supervisor,
    acquire_run_lock,
    drop_databases,
    ensure_databases,
    release_run_lock,
    run_lock_holder,
)
from devstack.layout import REPO_ROOT, RESERVED_PORTS, Layout
from devstack.procs import choose_port, port_answers, port_is_free
from devstack.testing.waiting import wait_for

URL_VARS = ("DATABASE_URL", "REDIS_URL", "NATS_URL")
TEST_PID_FILES = ["nats.pid", "postgres.pid", "redis.pid"]


@pytest.fixture(autouse=True)
def _no_external_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in URL_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("devstack")
    yield path
    # Whatever a failing test left running must not outlive the session.
    Stack("test", path).down()


def _ports(root: Path) -> dict[str, int]:
    return dict(json.loads((root / "var" / "test" / "stack.json").read_text())["ports"])


def _pid_files(root: Path) -> list[str]:
    return sorted(path.name for path in Layout(root, "test").run_dir.glob("*.pid"))


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in URL_VARS}


def _devstack(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _nats_info(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        line = sock.makefile("rb").readline()
    assert line.startswith(b"INFO ")
    return dict(json.loads(line[5:]))


async def _jetstream_account(url: str, seed: str | None) -> Any:
    from common.messaging.client import Credentials, open_connection

    client = await open_connection(
        url,
        name="pytest-devstack",
        credentials=Credentials(seed=seed),
        connect_timeout=5,
        allow_reconnect=False,
    )
    try:
        return await client.jetstream().account_info()
    finally:
        await client.close()


def test_stack_starts_answers_stops_and_restarts_with_same_data_and_ports(root: Path) -> None:
    stack = Stack("test", root)
    env = stack.start()
    assert stack.start() is env
    assert set(stack.started) == {"postgres", "redis", "nats"}
    ports = _ports(root)
    credentials = root / "var" / "test" / "nats" / "credentials"
    assert not RESERVED_PORTS & set(ports.values())
    assert len(set(ports.values())) == 4
    assert env == StackEnv(
        database_url=f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
        redis_url=f"redis://127.0.0.1:{ports['redis']}/0",
        nats_url=f"nats://127.0.0.1:{ports['nats']}",
        profile="test",
        nats_credentials=str(credentials),
    )
    assert env.as_environ() == {
        "DATABASE_URL": env.database_url,
        "REDIS_URL": env.redis_url,
        "NATS_URL": env.nats_url,
        "DEVSTACK_PROFILE": "test",
        "DEVSTACK_NATS_CREDENTIALS": str(credentials),
        "NATS_NKEY_SEED_FILE": str(credentials / "operator.nk"),
    }
    assert _pid_files(root) == TEST_PID_FILES

    assert ensure_databases(env.database_url, ["probe", "probe"]) == ["probe"]
    assert ensure_databases(env.database_url, ["probe"]) == []
    with psycopg.connect(env.database_url, dbname="probe") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")

    client = redis.Redis.from_url(env.redis_url)
    assert client.ping()
    client.close()

    info = _nats_info(ports["nats"])
    assert (info["jetstream"], info["auth_required"]) == (True, True)
    operator_seed = (credentials / "operator.nk").read_text()
    assert asyncio.run(_jetstream_account(env.nats_url, operator_seed)) is not None
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        asyncio.run(_jetstream_account(env.nats_url, None))
    # Generated once, readable by their owner only.
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in credentials.glob("*.nk")} == {
        f"{name}.nk": 0o600 for name in identities()
    }

    stack.stop()
    assert stack.started == ()
    assert not any(port_answers(port) for port in ports.values())
    assert _pid_files(root) == []

    again = Stack("test", root)
    try:
        assert again.start() == env
        assert _ports(root) == ports
        with psycopg.connect(env.database_url, dbname="probe") as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]

        bystander = Stack("test", root)
        bystander.start()
        assert bystander.started == ()
        assert set(bystander.reused) == {"postgres", "redis", "nats"}
        bystander.stop()
        assert all(port_answers(port) for port in ports.values())
    finally:
        again.stop()
    assert _pid_files(root) == []


def test_external_urls_replace_the_servers(tmp_path: Path) -> None:
    environ = {
        "DATABASE_URL": "postgresql://app@db.example:5433/app",
        "REDIS_URL": "redis://cache.example:6380/1",
        "NATS_URL": "nats://bus.example:4223",
    }
    stack = Stack("test", tmp_path, environ=environ)
    assert stack.start() == StackEnv(environ["DATABASE_URL"], environ["REDIS_URL"], environ["NATS_URL"], "test")
    assert stack.started == ()
    assert set(stack.external) == {"postgres", "redis", "nats"}
    assert _pid_files(tmp_path) == []
    stack.stop()


def test_exec_runs_the_command_with_the_urls_and_stops_what_it_started(root: Path) -> None:
    Stack("test", root).down()
    script = "import os, sys; print('URLS', *(os.environ[v] for v in sys.argv[1:])); sys.exit(3)"
    proc = _devstack(
        "exec", "--profile", "test", "--root", str(root), "--db", "exec_db", "--",
        sys.executable, "-c", script, *URL_VARS,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    ports = _ports(root)
    expected = (
        f"URLS postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres "
        f"redis://127.0.0.1:{ports['redis']}/0 nats://127.0.0.1:{ports['nats']}"
    )
    assert expected in proc.stdout
    assert _pid_files(root) == []
    assert not any(port_answers(port) for port in ports.values())


def test_exec_leaves_servers_it_found_running(root: Path) -> None:
    stack = Stack("test", root)
    env = stack.start()
    try:
        proc = _devstack("exec", "--profile", "test", "--root", str(root), "--db", "exec_db", "--", "true")
        assert proc.returncode == 0, proc.stderr
        assert "reused: nats, redis, postgres" in proc.stderr
        assert _pid_files(root) == TEST_PID_FILES
        query = "SELECT count(*) FROM pg_database WHERE datname = 'exec_db'"
        with psycopg.connect(env.database_url) as conn:
            assert conn.execute(query).fetchone() == (1,)
        drop_databases(env.database_url, ["exec_db"])
        with psycopg.connect(env.database_url) as conn:
            assert conn.execute(query).fetchone() == (0,)
    finally:
        stack.stop()


def test_exec_forwards_sigterm_then_cleans_up(root: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "exec", "--profile", "test", "--root", str(root),
         "--", sys.executable, "-c", script],
        cwd=REPO_ROOT, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert _pid_files(root) == []


def test_cli_up_prints_exports_and_down_stops(root: Path) -> None:
    up = _devstack("up", "--profile", "test", "--root", str(root), "--db", "cli_db")
    assert up.returncode == 0, up.stderr
    ports = _ports(root)
    credentials = root / "var" / "test" / "nats" / "credentials"
    assert up.stdout.splitlines() == [
        f"export DATABASE_URL=postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
        f"export REDIS_URL=redis://127.0.0.1:{ports['redis']}/0",
        f"export NATS_URL=nats://127.0.0.1:{ports['nats']}",
        "export DEVSTACK_PROFILE=test",
        f"export DEVSTACK_NATS_CREDENTIALS={credentials}",
        f"export NATS_NKEY_SEED_FILE={credentials}/operator.nk",
    ]
    assert _pid_files(root) == TEST_PID_FILES
    down = _devstack("down", "--profile", "test", "--root", str(root))
    assert down.returncode == 0, down.stderr
    assert "stopped postgres, redis, nats" in down.stderr
    assert _pid_files(root) == []
    assert not any(port_answers(port) for port in ports.values())


def test_ports_avoid_the_system_services() -> None:
    assert all(choose_port() not in RESERVED_PORTS for _ in range(50))
    assert not port_is_free(5432)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", choose_port()))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])


def test_supervisor_prefixes_output_and_stops_process_groups(tmp_path: Path) -> None:
    out = io.StringIO()
    supervisor = Supervisor(tmp_path / "var" / "run", out=out)
    web = supervisor.start("web", [sys.executable, "-c", "import time; print('hello'); print('bye'); time.sleep(60)"])
    # The shell's background sleep is in the child's process group, so stop_all must take it down too.
    worker = supervisor.start("worker", ["sh", "-c", "sleep 60 & echo started; wait"])
    pid_file = tmp_path / "var" / "run" / "web.pid"
    assert int(pid_file.read_text()) == web
    wait_for(lambda: "web          | bye\n" in out.getvalue() and "worker       | started\n" in out.getvalue())
    assert "web          | hello\n" in out.getvalue()
    assert "\x1b[" not in out.getvalue()

    began = time.monotonic()
    supervisor.stop_all(timeout=5)
    assert time.monotonic() - began < 5
    assert not psutil.pid_exists(web)
    with pytest.raises(ProcessLookupError):
        os.killpg(worker, 0)
    assert _pid_files(tmp_path) == []


def test_supervisor_reports_a_dead_child_and_stops_the_rest(tmp_path: Path) -> None:
    out = io.StringIO()
    supervisor = Supervisor(tmp_path / "var" / "run", out=out)
    sleeper = supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start("crasher", [sys.executable, "-c", "import sys, time; time.sleep(0.3); print('boom'); sys.exit(3)"])
    # If wait_forever never noticed, this SIGTERM ends it with status 0 and the assertion below fails.
    guard = threading.Timer(20, os.kill, (os.getpid(), signal.SIGTERM))
    guard.start()
    try:
        status = supervisor.wait_forever(poll_interval=0.05)
    finally:
        guard.cancel()
    assert status == 3
    assert "crasher      | boom\n" in out.getvalue()
    assert "crasher exited with code 3; stopping the others" in out.getvalue()
    assert not psutil.pid_exists(sleeper)
    assert _pid_files(tmp_path) == []


def test_supervisor_stops_everything_on_sigint(tmp_path: Path) -> None:
    out = io.StringIO()
    supervisor = Supervisor(tmp_path / "var" / "run", out=out)
    child = supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        assert supervisor.wait_forever(poll_interval=0.05) == 0
    finally:
        timer.cancel()
    assert "SIGINT received; stopping sleeper" in out.getvalue()
    assert signal.getsignal(signal.SIGINT) is before
    assert not psutil.pid_exists(child)


def test_run_lock_admits_one_make_run(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from devstack import acquire_run_lock\n"
        "assert acquire_run_lock(Path(sys.argv[1]))\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert acquire_run_lock(tmp_path) is False
        assert run_lock_holder(tmp_path) == holder.pid
        second = _devstack("run", "--root", str(tmp_path))
        assert second.returncode == 1
        assert f"a make run is already up (pid {holder.pid})" in second.stderr
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert acquire_run_lock(tmp_path) is True
    release_run_lock(tmp_path)
