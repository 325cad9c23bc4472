"""A Celery app of its own for test_beat: one periodic task, every half second, that counts its runs in Redis."""

import os

import redis
from celery import Celery

from common.conf.beat import add_beat_thread_option

BROKER = os.environ["BEAT_TEST_BROKER"]
COUNTER = os.environ["BEAT_TEST_COUNTER"]

app = Celery("beat_test", broker=BROKER)
app.conf.update(
    # A queue of its own: no other worker on the same Redis takes these tasks, and this worker takes no other.
    task_default_queue=f"{COUNTER}-queue",
    beat_schedule={"tick": {"task": "beat_test.tick", "schedule": 0.5}},
    broker_connection_retry_on_startup=True,
)
add_beat_thread_option(app)


@app.task(name="beat_test.tick")
def tick() -> None:
    redis.Redis.from_url(BROKER).incr(COUNTER)
