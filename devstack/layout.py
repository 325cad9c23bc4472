"""Where each profile keeps its state (var/<profile>/), and the URLs of the servers a stack answers on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.conf.nats_trust import OPERATOR
from devstack.trust import CREDENTIALS_ENV, identity_environ

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("dev", "test", "bench", "verify")
# Names the profile in the environment of the commands `python -m devstack exec` runs.
PROFILE_ENV = "DEVSTACK_PROFILE"
# The machine's own services live on these; a devstack server must never take them, even when they are down.
RESERVED_PORTS = frozenset({5432, 6379, 4222, 8222})
PG_SYSTEM_USER = "embedded_postgres"
PG_SUPERUSER = "postgres"


class DevStackError(RuntimeError):
    """A devstack server could not be prepared, started, reached or stopped."""


@dataclass(frozen=True)
class StackEnv:
    """Where the stack's servers answer, as URLs."""

    database_url: str
    redis_url: str
    nats_url: str
    # Whose files (pid files, static files, mail, schedules) the processes started on these servers use.
    profile: str = "dev"
    # The seeds of the embedded NATS server's identities (devstack/trust.py); empty when NATS_URL is external,
    # whose credentials are whatever the environment gives.
    nats_credentials: str = ""

    def as_environ(self) -> dict[str, str]:
        """What a `python -m devstack exec` command gets: the URLs and, on the embedded NATS, the operator's seed."""
        environ = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "NATS_URL": self.nats_url,
            PROFILE_ENV: self.profile,
        }
        if self.nats_credentials:
            environ[CREDENTIALS_ENV] = self.nats_credentials
            environ.update(identity_environ(OPERATOR, environ))
        return environ

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StackEnv:
        """The stack a `python -m devstack exec` command runs on, from the variables it was given."""
        return cls(
            environ["DATABASE_URL"],
            environ["REDIS_URL"],
            environ["NATS_URL"],
            environ.get(PROFILE_ENV, "dev"),
            environ.get(CREDENTIALS_ENV, ""),
        )


@dataclass(frozen=True)
class Layout:
    """Paths of one profile's state: var/<profile>/ for data, logs and run files; the dev profile keeps the paths
    the README promises (var/run/, var/static/, var/mail/). No two profiles share a file, so a `make bench` or
    `make verify` beside a `make run` leaves the run's pid files, schedule and mail alone."""

    root: Path
    profile: str

    @property
    def var_dir(self) -> Path:
        return self.root / "var" / self.profile

    @property
    def run_dir(self) -> Path:
        """Pid files, the run lock and the Celery beat schedule."""
        return self.root / "var" / "run" if self.profile == "dev" else self.var_dir / "run"

    @property
    def mail_dir(self) -> Path:
        return self.root / "var" / "mail" if self.profile == "dev" else self.var_dir / "mail"

    def static_dir(self, service: str) -> Path:
        return self.root / "var" / "static" / service if self.profile == "dev" else self.var_dir / "static" / service

    @property
    def state_file(self) -> Path:
        return self.var_dir / "stack.json"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"
