"""The embedded NATS server's identities as environment: which seed file a process of the stack connects with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from common.conf.nats_trust import seed_file

# The directory of the seeds devstack generated for its embedded server (var/<profile>/nats/credentials).
CREDENTIALS_ENV = "DEVSTACK_NATS_CREDENTIALS"


def identity_environ(identity: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """NATS_NKEY_SEED_FILE of `identity` when devstack generated the server's credentials, else nothing (an
    external NATS_URL: its credentials are whatever the environment gives)."""
    directory = (os.environ if environ is None else environ).get(CREDENTIALS_ENV)
    if not directory:
        return {}
    return {"NATS_NKEY_SEED_FILE": str(seed_file(Path(directory), identity))}
