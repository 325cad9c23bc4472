"""`celery worker --beat-thread`: run the beat scheduler as a thread of one worker instead of a process of its own.

Celery's own `-B` forks the scheduler off the worker: a second Python process of ~100 MiB resident (its copy-on-write
pages count in full in its RSS). Beat only wakes up to publish a handful of periodic tasks, so a thread of the worker
that is started with this flag does the same job at no measurable cost (the worker's idle RSS: 105 MiB with or
without it). Exactly one process of the deployment may run it:
`make run` passes it to the first worker only, whatever SCALE is.
"""

from __future__ import annotations

from typing import Any

import click
from celery import Celery, bootsteps


class BeatThread(bootsteps.StartStopStep):
    """The worker bootstep behind `--beat-thread`: starts the scheduler thread with the worker, stops it with it."""

    label = "Beat thread"
    conditional = True

    def __init__(self, parent: Any, beat_thread: bool = False, **kwargs: Any) -> None:
        self.enabled = bool(beat_thread)
        super().__init__(parent, **kwargs)

    def create(self, parent: Any) -> Any:
        # Imported here: the auth service's bridges and HTTP processes load this app too and never schedule.
        from celery.beat import EmbeddedService

        # The schedule file is the worker's `-s/--schedule-filename` (default: beat_schedule_filename).
        return EmbeddedService(
            parent.app,
            thread=True,
            schedule_filename=parent.schedule_filename,
            scheduler_cls=parent.scheduler,
        )


def add_beat_thread_option(app: Celery) -> None:
    """Give `celery -A <app> worker` the `--beat-thread` flag."""
    app.user_options["worker"].add(
        click.Option(
            ["--beat-thread"],
            is_flag=True,
            default=False,
            help="Also run the beat scheduler, as a thread of this worker (start exactly one such worker).",
        )
    )
    app.steps["worker"].add(BeatThread)
