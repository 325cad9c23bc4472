"""`celery worker --beat-thread` against the real Redis: the worker schedules by itself, in one process, and stops.

Each test runs under both ways of starting a worker: `celery ... worker` and `python -m common.conf.worker` (the
worker command alone, which the stack uses).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def counter() -> Iterator[str]:
    key = f"beat-test-{uuid.uuid4().hex}"
    yield key
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(key, f"{key}-queue", f"_kombu.binding.{key}-queue")


LAUNCHERS = {
    "celery": [sys.executable, "-m", "celery", "-A", "common.conf.tests.beat_app", "worker"],
    "common.conf.worker": [sys.executable, "-m", "common.conf.worker", "-A", "common.conf.tests.beat_app"],
}


@pytest.fixture(params=sorted(LAUNCHERS))
def launcher(request: pytest.FixtureRequest) -> list[str]:
    return LAUNCHERS[request.param]


def _worker(launcher: list[str], counter: str, *flags: str) -> subprocess.Popen[str]:
    argv = [*launcher, "--pool", "threads"]
    argv += ["--concurrency", "1", "-l", "info", "-n", f"{counter}@%h", "--without-mingle", "--without-gossip"]
    env = {**os.environ, "BEAT_TEST_BROKER": os.environ["REDIS_URL"], "BEAT_TEST_COUNTER": counter}
    return subprocess.Popen(
        [*argv, *flags], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _runs(counter: str) -> int:
    return int(redis.Redis.from_url(os.environ["REDIS_URL"]).get(counter) or 0)


def _stop(worker: subprocess.Popen[str]) -> str:
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=20)
    return output


def test_the_worker_runs_beat_on_a_thread_and_stops_on_sigterm(
    tmp_path: Path, counter: str, launcher: list[str]
) -> None:
    worker = _worker(launcher, counter, "--beat-thread", "-s", str(tmp_path / "schedule"))
    try:
        deadline = time.monotonic() + 30
        while _runs(counter) < 3 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        runs = _runs(counter)
        # The scheduler is a thread of the worker: no second process holding a copy of the app.
        children = psutil.Process(worker.pid).children(recursive=True) if worker.poll() is None else None
    finally:
        started = time.monotonic()
        output = _stop(worker)
    assert runs >= 3, output[-3000:]
    assert children == [], output[-3000:]
    assert "beat: Starting..." in output
    assert worker.returncode == 0, output[-3000:]
    assert time.monotonic() - started < 10, "beat held the worker's shutdown up"
    assert list(tmp_path.glob("schedule*")), "the -s schedule file was not used"


def test_without_the_flag_the_worker_schedules_nothing(counter: str, launcher: list[str]) -> None:
    worker = _worker(launcher, counter)
    try:
        assert worker.stdout is not None
        for line in worker.stdout:  # "celery@host ready." once it consumes
            if " ready." in line:
                break
        time.sleep(2)  # four ticks' worth
    finally:
        output = _stop(worker)
    assert worker.returncode == 0, output[-3000:]
    assert _runs(counter) == 0
    assert "beat: Starting..." not in output


_IMPORTS_PROBE = """
import sys
from celery.bin import worker
worker.worker.main = lambda **kwargs: None  # everything up to starting the worker, not the worker itself
{start}
print(sorted(name for name in ("click_repl", "prompt_toolkit", "celery.bin.amqp") if name in sys.modules))
"""


@pytest.mark.parametrize(
    ("start", "loaded"),
    [
        ("import common.conf.worker as w; w.main(['-A', 'common.conf.tests.beat_app'])", "[]"),
        # The `celery` CLI loads them, which is why the stack does not start its worker through it.
        ("import celery.bin.celery", "['celery.bin.amqp', 'click_repl', 'prompt_toolkit']"),
    ],
)
def test_the_worker_command_alone_leaves_the_rest_of_the_celery_cli_unloaded(start: str, loaded: str) -> None:
    env = {**os.environ, "BEAT_TEST_BROKER": os.environ["REDIS_URL"], "BEAT_TEST_COUNTER": "unused"}
    probe = subprocess.run(
        [sys.executable, "-c", _IMPORTS_PROBE.format(start=start)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip() == loaded


def test_the_worker_command_alone_wants_the_app_first() -> None:
    probe = subprocess.run(
        [sys.executable, "-m", "common.conf.worker", "--pool", "threads"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode != 0
    assert "usage: python -m common.conf.worker -A <app>" in probe.stderr
