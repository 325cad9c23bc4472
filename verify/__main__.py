"""`python -m verify [--only SECTION]`: run the sections, print the summary, write var/verify/latest.json."""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from verify.consistency import Checker
from verify.procs import REPO_ROOT
from verify.report import Row, say, table, write_json
from verify.system import System, system_under_test

SECTIONS = ("abuse", "fuzz", "soak", "faults")
RESULT = REPO_ROOT / "var" / "verify" / "latest.json"


Section = Callable[[System, Checker, Callable[[str], bool]], list[Row]]


def _section(name: str) -> Section:
    # Imported on demand: --only abuse should not pay for schemathesis' import, for one.
    if name == "faults":
        from verify.faults import run as faults

        return faults
    if name == "fuzz":
        from verify.fuzz import run as fuzz

        return fuzz
    if name == "soak":
        from verify.soak import run as soak

        return soak
    from verify.abuse import run as abuse

    return abuse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    parser.add_argument("--case", action="append", help="run only cases whose name contains this (repeatable)")
    args = parser.parse_args(argv)

    def selected(case: str) -> bool:
        return not args.case or any(part in case for part in args.case)

    # Cheap and deterministic sections first; the faults last, so a fault that broke something for good
    # cannot fail the sections after it.
    sections = [name for name in SECTIONS if not args.only or name in args.only]
    started = time.monotonic()
    rows: list[Row] = []
    error = ""
    try:
        with system_under_test() as system:
            checker = Checker(
                database_url=system.stack.env["DATABASE_URL"],
                auth_db=system.auth_db(),
                main_db=system.main_db(),
                nats_url=system.stack.nats_url,
                stream=os.environ.get("USER_EVENTS_STREAM", "USERS"),
                durable=os.environ.get("USER_EVENTS_DURABLE", "main_api_users"),
            )
            say(f"verify: stack ready in {time.monotonic() - started:.0f} s; logs in {system.log_dir}")
            for name in sections:
                section_started = time.monotonic()
                rows += _section(name)(system, checker, selected)
                say(f"verify: {name} done in {time.monotonic() - section_started:.0f} s")
    except Exception as exc:  # noqa: BLE001 - reported as the run's failure, with the rows gathered so far
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    elapsed = time.monotonic() - started
    say()
    say(table(rows))
    say()
    failed = [row for row in rows if not row.passed]
    if error:
        say(f"verify: ERROR {error}")
    say(f"verify: {len(rows) - len(failed)}/{len(rows)} passed in {elapsed:.0f} s")
    write_json(
        RESULT,
        {
            "finished_at": datetime.now(UTC).isoformat(),
            "seconds": round(elapsed, 1),
            "sections": sections,
            "passed": not failed and not error,
            "error": error,
            "rows": [row.as_dict() for row in rows],
        },
    )
    return 1 if failed or error else 0


if __name__ == "__main__":
    raise SystemExit(main())
