"""docker-compose.yml is safe by default, in both profiles: read from the file (Docker is not needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from common.conf.nats_trust import identities, identity_of
from common.conf.processes import BY_NAME

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCUMENT: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = DOCUMENT["services"]
PROFILES = ("default", "scale")
# What each profile may publish on the host's every interface: its one public entry.
PUBLIC_ENTRY = {"default": "gateway", "scale": "scale-lb"}
NATS_SERVERS = {"default": ["nats"], "scale": ["nats-1", "nats-2", "nats-3"]}
SETUP = {"default": "migrate", "scale": "scale-migrate"}


def _in(profile: str) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in SERVICES.items()
        if (profile in service.get("profiles", [])) or (profile == "default" and "profiles" not in service)
    }


def _secret_file(source: str) -> str:
    return str(DOCUMENT["secrets"][source]["file"])


def _mounted(service: dict[str, Any]) -> dict[str, str]:
    """target → source of a service's secrets (a bare name mounts at /run/secrets/<name>)."""
    mounts = {}
    for entry in service.get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = entry if isinstance(entry, str) else entry.get("target", source)
        mounts[target] = source
    return mounts


@pytest.mark.parametrize("profile", PROFILES)
def test_only_the_public_entry_is_published_on_every_interface(profile: str) -> None:
    published = {}
    for name, service in _in(profile).items():
        for port in service.get("ports", []):
            published.setdefault(name, []).append(str(port))
    exposed = {name for name, ports in published.items() if any(not port.startswith("127.0.0.1:") for port in ports)}
    assert exposed == {PUBLIC_ENTRY[profile]}
    if profile == "default":
        assert published == {
            "gateway": ["8000:8000"],
            "auth-http": ["127.0.0.1:8001:8001"],
            "main-http": ["127.0.0.1:8002:8002"],
        }


@pytest.mark.parametrize("profile", PROFILES)
def test_nats_runs_an_image_whose_healthcheck_can_pass_with_the_generated_authorization(profile: str) -> None:
    for name in NATS_SERVERS[profile]:
        service = SERVICES[name]
        # The scratch image (`nats:2.10`) has no wget: its healthcheck could never pass.
        assert service["image"].endswith("-alpine"), name
        assert service["healthcheck"]["test"][:2] == ["CMD", "wget"]
        config = service["command"][service["command"].index("-c") + 1]
        assert _mounted(service)[config] in {"nats_server_conf", "nats_cluster_conf"}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_process_mounts_the_seed_of_its_own_identity(profile: str) -> None:
    for name, service in _in(profile).items():
        if service.get("image") != "authmesh:latest":
            continue
        command = service["command"][0]
        identity = "operator" if command == "migrate" else identity_of(BY_NAME[command].name)
        assert identity in identities()
        assert service["environment"]["NATS_NKEY_SEED_FILE"] == "/run/secrets/nats_seed", name
        assert _secret_file(_mounted(service)["nats_seed"]) == f"./docker/secrets/{identity}.nk", name


@pytest.mark.parametrize("profile", PROFILES)
def test_no_account_is_seeded_with_a_published_password(profile: str) -> None:
    for name, service in _in(profile).items():
        if service.get("image") != "authmesh:latest":
            continue
        environment = service["environment"]
        assert "SEED_PASSWORD" not in environment, name
        if name == SETUP[profile]:
            # The initial password is a secret of the deployment (empty by default: nothing is seeded).
            assert environment["SEED_PASSWORD_FILE"] == "/run/secrets/seed_password"
            assert _secret_file(_mounted(service)["seed_password"]) == "./docker/secrets/seed-password"
        else:
            assert "SEED_PASSWORD_FILE" not in environment, name
    assert "Password123" not in (REPO_ROOT / "docker-compose.yml").read_text()


def test_the_secrets_are_never_committed() -> None:
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    assert "docker/secrets/" in ignored
    assert {_secret_file(name).rsplit("/", 1)[0] for name in DOCUMENT["secrets"]} == {"./docker/secrets"}
