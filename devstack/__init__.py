"""Real PostgreSQL, Redis and NATS servers from PyPI wheels for development and tests, plus a process supervisor."""

from devstack.layout import PROFILES, REPO_ROOT, DevStackError, StackEnv
from devstack.servers import drop_databases, ensure_databases
from devstack.stack import Stack
from devstack.supervisor import Supervisor, acquire_run_lock, release_run_lock, run_lock_holder

__all__ = [
    "PROFILES",
    "REPO_ROOT",
    "DevStackError",
    "Stack",
    "StackEnv",
    "Supervisor",
    "acquire_run_lock",
    "drop_databases",
    "ensure_databases",
    "release_run_lock",
    "run_lock_holder",
]
