"""Who may do what on NATS (SPEC §4b): one identity per process kind, its NKEY, and the server's permissions.

Every process connects with an NKEY of its own: the server keeps only public keys (its configuration is no secret)
and a client proves its key by signing the server's nonce, so the seed never crosses the wire. The permissions
below are the whole of what each identity may publish and subscribe to; the server refuses the rest. The subject
lists are read from common.contracts.subjects, so a subject is named once.

`python -m devstack secrets` writes the credentials of a compose deployment with write_deployment(): one seed file
per identity, the server's authorization block and the cluster's route password (docker-compose.yml's secrets).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nkeys

from common.contracts import subjects

OPERATOR = "operator"
SEED_SUFFIX = ".nk"
AUTHORIZATION_FILE = "authorization.conf"
ROUTE_USER = "route"


def inbox_prefix(service: str) -> str:
    """The reply subjects of a service's processes: `_INBOX.<service>.<random>.<n>`, readable by that service only."""
    return f"_INBOX.{service}"


def _inbox(service: str) -> str:
    return f"{inbox_prefix(service)}.>"


# Request subjects each bridge serves (and the gateway sends). The seed subjects are served in development only.
AUTH_REQUESTS = (
    subjects.AUTH_SIGNUP,
    subjects.AUTH_VERIFY_ACCOUNT,
    subjects.AUTH_RESEND_VERIFICATION,
    subjects.AUTH_LOGIN,
    subjects.AUTH_REVALIDATE,
    subjects.AUTH_LOGOUT,
    subjects.AUTH_SESSIONS_LIST,
    subjects.AUTH_SESSIONS_END,
    subjects.AUTH_RECOVER,
    subjects.AUTH_RESET_PASSWORD,
    subjects.AUTH_DENY_ACCESS,
    subjects.AUTH_JWKS,
    subjects.AUTH_OAUTH_TOKEN,
    subjects.AUTH_LOGIN_MFA,
    subjects.AUTH_MFA_STATUS,
    subjects.AUTH_TOTP_SETUP,
    subjects.AUTH_TOTP_CONFIRM,
    subjects.AUTH_TOTP_DISABLE,
    subjects.AUTH_RECOVERY_CODES_REGENERATE,
    subjects.AUTH_MFA_RESET,
    subjects.AUTH_USER_CREATE,
    subjects.AUTH_USER_UPDATE,
    subjects.AUTH_USER_DEACTIVATE,
    subjects.AUTH_USER_DELETE,
    subjects.AUTH_SEED,
)
MAIN_REQUESTS = (subjects.USER_FIND_ALL, subjects.USER_FIND_ONE, subjects.MAIN_SEED)


def bridge_subjects(service: str, requests: Iterable[str]) -> tuple[str, ...]:
    """Everything a service's bridge answers: its requests, its health and its log-level operations."""
    return (
        *requests,
        subjects.health(service),
        subjects.log_level_get(service),
        subjects.log_level_set(service),
    )


@dataclass(frozen=True)
class EventNames:
    """The identity-events stream as the deployment names it (the same variables the services read)."""

    stream: str = "USERS"
    subject_prefix: str = "auth.user"
    durable: str = "main_api_users"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> EventNames:
        source = os.environ if environ is None else environ
        default = cls()
        return cls(
            stream=source.get("USER_EVENTS_STREAM") or default.stream,
            subject_prefix=source.get("USER_EVENTS_SUBJECT_PREFIX") or default.subject_prefix,
            durable=source.get("USER_EVENTS_DURABLE") or default.durable,
        )


@dataclass(frozen=True)
class Identity:
    """What one kind of process may publish and subscribe to; `responds`: it may answer requests it received."""

    name: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    responds: bool = False

    @property
    def is_unrestricted(self) -> bool:
        return self.name == OPERATOR

    def permissions(self) -> dict[str, object]:
        allowed: dict[str, object] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.responds:
            allowed["allow_responses"] = True
        return allowed


def identities(names: EventNames | None = None) -> dict[str, Identity]:
    """Every identity of a deployment, by name (the process names of common.conf.processes, and the operator)."""
    events = names or EventNames.from_environ()
    stream, durable = events.stream, events.durable
    auth_bridge = bridge_subjects("auth", AUTH_REQUESTS)
    main_bridge = bridge_subjects("main", MAIN_REQUESTS)
    user_events = f"{events.subject_prefix}.>"
    # The durable consumer of main_api: read the stream's and the consumer's state, (re)create the durable when
    # JetStream lost it, fetch, acknowledge. Never the stream's configuration: that is the operator's.
    main_consumer = (
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    )
    every = [
        # The public edge: sends the services' requests (and the broadcast of its own log level), reads its inbox.
        Identity(
            "gateway",
            publish=(*auth_bridge, *main_bridge, subjects.log_level_set("gateway"), _inbox("gateway")),
            subscribe=(_inbox("gateway"), subjects.log_level_set("gateway"), subjects.JWKS_KEY_REVOKED),
            responds=True,
        ),
        # The auth bridge answers its own requests and relays the outbox (the only publishers of identity events);
        # a key revocation (`revoke_key`, run with the auth service's identity) is announced to every gateway and
        # every auth bridge, which stop trusting or signing with the key at once.
        Identity(
            "auth-bridge",
            publish=(user_events, subjects.JWKS_KEY_REVOKED),
            subscribe=(*auth_bridge, _inbox("auth"), subjects.JWKS_KEY_REVOKED),
            responds=True,
        ),
        Identity("auth-worker", publish=(user_events,), subscribe=(_inbox("auth"),)),
        Identity("main-bridge", publish=main_consumer, subscribe=(*main_bridge, _inbox("main")), responds=True),
        # The admin consoles use NATS for their readiness check only (a request to their own inbox).
        Identity("auth-http", publish=(_inbox("auth"),), subscribe=(_inbox("auth"),)),
        Identity("main-http", publish=(_inbox("main"),), subscribe=(_inbox("main"),)),
        # Provisioning (migrate, provision_streams, seed) and test harnesses that act outside any one service.
        Identity(OPERATOR, publish=(">",), subscribe=(">",)),
    ]
    return {identity.name: identity for identity in every}


def identity_of(process: str) -> str:
    """The identity a process of common.conf.processes connects with (every worker shares the worker's)."""
    return "auth-worker" if process.startswith("auth-worker") else process


# --- credentials ---------------------------------------------------------------------------------------------------


def seed_file(directory: Path, identity: str) -> Path:
    return directory / f"{identity}{SEED_SUFFIX}"


def _write_secret(path: Path, content: str, mode: int = 0o600) -> None:
    """Create a file, whole or not at all, with its final mode from the start (never readable by others for a
    moment); when another process created it first (two suites starting at once), theirs is kept."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        os.chmod(tmp, mode)  # whatever the umask took away
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def ensure_seeds(directory: Path, names: Iterable[str], mode: int = 0o600) -> dict[str, str]:
    """Each identity's public key, generating (once) the seeds that are missing, in a directory only its owner
    may enter."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    public: dict[str, str] = {}
    for name in names:
        path = seed_file(directory, name)
        if not path.exists():
            seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER).decode()
            _write_secret(path, seed + "\n", mode)
        public[name] = public_key(path.read_text())
    return public


def public_key(seed: str) -> str:
    keys = nkeys.from_seed(bytearray(seed.strip().encode()))
    try:
        return str(keys.public_key.decode())
    finally:
        keys.wipe()


def authorization_block(public_keys: Mapping[str, str], names: EventNames | None = None) -> str:
    """The server's `authorization` block: one NKEY user per identity, with its permissions (JSON values)."""
    users = []
    for name, identity in identities(names).items():
        user: dict[str, object] = {"nkey": public_keys[name]}
        if not identity.is_unrestricted:
            user["permissions"] = identity.permissions()
        users.append(f"    # {name}\n    {json.dumps(user)}")
    return "authorization {\n  users: [\n" + ",\n".join(users) + "\n  ]\n}\n"


def write_server_credentials(directory: Path, names: EventNames | None = None) -> Path:
    """Seeds (kept if present) and the authorization block of a server; returns the block's path."""
    public = ensure_seeds(directory, identities(names))
    path = directory / AUTHORIZATION_FILE
    tmp = path.with_name(f".{AUTHORIZATION_FILE}.{os.getpid()}")
    tmp.write_text("# Generated by common.conf.nats_trust: NKEY users and permissions (public keys only).\n"
                   + authorization_block(public, names))  # fmt: skip
    tmp.replace(path)
    return path


# docker-compose.yml: each server's configuration is a generated file that includes the committed one beside it
# (docker/nats.conf, docker/nats/cluster.conf: what the server does) and adds who may connect (a secret).
SERVER_FILE = "nats-server.conf"
CLUSTER_SERVER_FILE = "nats-cluster.conf"
ROUTE_PASSWORD_FILE = "route-password"  # noqa: S105 - a file name
SEED_PASSWORD_FILE = "seed-password"  # noqa: S105 - a file name
CLUSTER_NAME = "authmesh"
CLUSTER_PORT = 6222
CLUSTER_ROUTES = ("nats-1:6222", "nats-2:6222", "nats-3:6222")


def cluster_block(addresses: Sequence[str], password: str) -> str:
    """The cluster of the scale profile with authenticated routes: every node requires the route password and
    offers it to the others. Restated whole: a block in the including file replaces the included one."""
    routes = [json.dumps(f"nats-route://{ROUTE_USER}:{password}@{address}") for address in addresses]
    return (
        f"cluster {{\n  name: {CLUSTER_NAME}\n  port: {CLUSTER_PORT}\n"
        f"  authorization {{\n    user: {ROUTE_USER}\n    password: {json.dumps(password)}\n  }}\n"
        "  routes: [\n    " + "\n    ".join(routes) + "\n  ]\n}\n"
    )


# Compose without swarm bind-mounts a secret file with its owner and mode on the host, and the image runs as an
# unprivileged user of its own (uid 10001): the files are readable by all, the directory (0700) by its owner only.
DEPLOYMENT_FILE_MODE = 0o644


def _kept_secret(path: Path, make: str) -> str:
    if not path.exists():
        _write_secret(path, make, DEPLOYMENT_FILE_MODE)
    return path.read_text().strip()


def _replaced_secret(path: Path, content: str) -> Path:
    path.unlink(missing_ok=True)
    _write_secret(path, content, DEPLOYMENT_FILE_MODE)
    return path


def cluster_server_config(public_keys: Mapping[str, str], routes: Sequence[str], password: str) -> str:
    """A cluster node's configuration: docker/nats/cluster.conf (beside it), the users, authenticated routes."""
    users = authorization_block(public_keys, EventNames.from_environ())
    return f"{GENERATED}include ./cluster.conf\n{users}{cluster_block(routes, password)}"


GENERATED = "# Generated by `python -m devstack secrets` (common/conf/nats_trust.py).\n"


def write_deployment(directory: Path, *, routes: Sequence[str] = CLUSTER_ROUTES) -> list[Path]:
    """Everything docker-compose.yml reads as secrets; existing seeds and passwords are kept, never replaced.

    `seed-password` starts empty: the seed then creates no account (production settings have no default password)
    until an operator writes one there, or creates the first account with `createsuperuser`.
    """
    names = EventNames.from_environ()
    public = ensure_seeds(directory, identities(names), DEPLOYMENT_FILE_MODE)
    users = authorization_block(public, names)
    route_password = _kept_secret(directory / ROUTE_PASSWORD_FILE, secrets.token_urlsafe(32) + "\n")
    _kept_secret(directory / SEED_PASSWORD_FILE, "")
    return [
        _replaced_secret(directory / SERVER_FILE, f"{GENERATED}include ./nats.conf\n{users}"),
        _replaced_secret(directory / CLUSTER_SERVER_FILE, cluster_server_config(public, routes, route_password)),
        *(seed_file(directory, name) for name in public),
        directory / SEED_PASSWORD_FILE,
    ]
