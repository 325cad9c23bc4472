"""`make bench`: start the stack with production-like settings, measure every case, print a table, write JSON.

Runs inside `python -m devstack exec --profile bench`, so DATABASE_URL/REDIS_URL/NATS_URL point at servers
of its own. HTTP processes listen on RUN_PORT_BASE (18000) so a `make run` on 8000 is left alone. Every load is
bounded in time and goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("RUN_PORT_BASE", "18000")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("LOG_JSON", "true")
os.environ.setdefault("COOKIE_SECURE", "false")
os.environ.setdefault("SEED_OVER_HTTP", "false")
os.environ.setdefault("GATEWAY_WORKERS", "2")
os.environ.setdefault("MAIN_WORKERS", "1")
os.environ.setdefault("AUTH_WORKERS", "1")
# Throttles protect production; the benchmark measures throughput from one IP on purpose.
os.environ.setdefault(
    "THROTTLE_RATES",
    "login.ip=100000000/10m,login.account-source=100000000/10m,signup.ip=100000000/10m,signup.account=100000000/10m",
)

from bench import cases
from devstack.layout import StackEnv
from devstack.run import layout, prepare, start_processes, wait_ready
from devstack.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    stack = StackEnv.from_environ(os.environ)
    seconds = float(os.environ.get("BENCH_SECONDS", "20"))
    prepare(stack)
    supervisor = Supervisor(layout(stack).run_dir, out=open(ROOT / "var" / "bench-processes.log", "w"))  # noqa: SIM115
    try:
        start_processes(stack, supervisor)
        wait_ready()
        report = cases.run_all(stack=stack, supervisor=supervisor, seconds=seconds)
    finally:
        supervisor.stop_all()
    out_dir = ROOT / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    report["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out_dir / "latest.json").write_text(json.dumps(report, indent=2))
    print(cases.render(report))
    print(f"\nwritten: {out_dir / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
