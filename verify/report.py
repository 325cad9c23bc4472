"""Results of every verify section: one shape, a plain-text table for the terminal and JSON for var/verify/."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def say(text: str = "") -> None:
    """Progress and results go to stdout, flushed: the CI log shows how far a run got if it is cut short."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class Row:
    """One line of the summary: a fault, a fuzzed operation, the soak or an abuse case."""

    section: str
    name: str
    accepted: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    server_errors: int = 0
    # Any other broken promise: a 5xx other than 500, an error outside the envelope, fail-open, a dead process...
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.server_errors or self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "passed": self.passed,
            "accepted": self.accepted,
            "stored": self.stored,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "server_errors": self.server_errors,
            "problems": self.problems,
            "seconds": round(self.seconds, 1),
            "details": self.details,
        }


_COLUMNS = ("section", "case", "accepted", "stored", "lost", "dup", "500s", "problems", "s", "result")


def table(rows: Sequence[Row]) -> str:
    """Fixed-width columns; the first problem of a failing row is printed under it."""
    cells = [
        [
            row.section,
            row.name,
            str(row.accepted),
            str(row.stored),
            str(row.lost),
            str(row.duplicated),
            str(row.server_errors),
            str(len(row.problems)),
            f"{row.seconds:.0f}",
            "ok" if row.passed else "FAIL",
        ]
        for row in rows
    ]
    widths = [max([len(header), *(len(line[i]) for line in cells)]) for i, header in enumerate(_COLUMNS)]
    out = ["  ".join(h.ljust(w) for h, w in zip(_COLUMNS, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for row, line in zip(rows, cells, strict=True):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        out.extend(f"      ! {problem}" for problem in row.problems[:5])
    return "\n".join(out)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)
