"""`celery worker --beat-thread` against the real Redis: the worker schedules by itself, in one process, and stops."""

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


def _worker(tmp_path: Path, counter: str, *flags: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "celery", "-A", "common.conf.tests.beat_app", "worker", "--pool", "threads"]
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


def test_the_worker_runs_beat_on_a_thread_and_stops_on_sigterm(tmp_path: Path, counter: str) -> None:
    worker = _worker(tmp_path, counter, "--beat-thread", "-s", str(tmp_path / "schedule"))
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


def test_without_the_flag_the_worker_schedules_nothing(tmp_path: Path, counter: str) -> None:
    worker = _worker(tmp_path, counter)
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
