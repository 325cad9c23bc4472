"""`python -m common.conf.worker -A <app> [worker options]`: Celery's `worker` command without the rest of its CLI.

`celery -A <app> worker` builds the whole `celery` command group before it runs the worker: every subcommand, among
them `amqp`, whose interactive shell (click-repl, prompt_toolkit, wcwidth) stays imported in the worker for its
whole life, about 8 MiB resident that it never uses. This runs the very same click command
(`celery.bin.worker.worker`) with the same options and the app's own worker options (`--beat-thread`), so flags,
logging, signals and exit codes are Celery's.

Django's system checks are skipped, as `celery --skip-checks` would: `migrate`, which runs before any process of a
deployment starts, has run them on the same settings, and they import the URLconf, the admin and DRF, which a
worker never serves.
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: python -m common.conf.worker -A <app> [celery worker options]"


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in ("-A", "--app"):
        raise SystemExit(USAGE)
    os.environ.setdefault("CELERY_SKIP_CHECKS", "true")
    # Imported after the environment is set: the app's Django fix-up reads it when the worker starts.
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    app = find_app(argv[1])
    # What the `celery` group does for its subcommands before it invokes one.
    worker.params.extend(app.user_options.get("worker", []))
    if app.user_options.get("preload"):
        raise SystemExit("preload options need the `celery` command: celery -A <app> worker ...")
    worker.main(
        args=argv[2:],
        prog_name="celery worker",
        obj=CLIContext(app=app, no_color=bool(os.environ.get("NO_COLOR")), workdir=None),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
