"""The argon2id hasher: libsodium at the configured parameters, older hashes verified and upgraded at login."""

from __future__ import annotations

import pytest
from argon2 import low_level
from django.contrib.auth.hashers import check_password, get_hasher, make_password
from django.test import override_settings

from auth_service.accounts import hashers
from auth_service.accounts.models import User
from auth_service.accounts.tests.conftest import AuthApi
from auth_service.accounts.tests.factories import PASSWORD, UserFactory


def _argon2_cffi_hash(password: str, *, memory_cost: int, time_cost: int, salt: bytes) -> str:
    """A hash as the former argon2-cffi hasher wrote it (Django's 22-character salt, m=19 MiB, t=2)."""
    data = low_level.hash_secret(
        password.encode(),
        salt,
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=1,
        hash_len=32,
        type=low_level.Type.ID,
    )
    return "argon2" + data.decode("ascii")


def test_new_hashes_are_argon2id_at_the_configured_parameters_with_a_16_byte_salt() -> None:
    encoded = make_password(PASSWORD)
    hasher = get_hasher("default")

    assert encoded.startswith("argon2$argon2id$v=19$m=7168,t=5,p=1$")
    assert len(hasher.decode(encoded)["salt"]) == 16
    assert make_password(PASSWORD) != encoded
    assert check_password(PASSWORD, encoded)
    assert not check_password(PASSWORD + "x", encoded)
    assert not hasher.must_update(encoded)


def test_libsodium_hashes_verify_with_argon2_cffi_too() -> None:
    encoded = make_password(PASSWORD)

    assert low_level.verify_secret(encoded.removeprefix("argon2").encode(), PASSWORD.encode(), low_level.Type.ID)


@override_settings(PASSWORD_ARGON2_MEMORY_KIB=9216, PASSWORD_ARGON2_TIME_COST=4)
def test_the_parameters_come_from_settings() -> None:
    encoded = make_password(PASSWORD)

    assert encoded.startswith("argon2$argon2id$v=19$m=9216,t=4,p=1$")
    assert check_password(PASSWORD, encoded)


def test_an_older_hash_verifies_and_must_be_updated() -> None:
    legacy = _argon2_cffi_hash(PASSWORD, memory_cost=19456, time_cost=2, salt=b"abcdefghijklmnopqrstuv")
    hasher = get_hasher("default")

    assert hasher.verify(PASSWORD, legacy)
    assert not hasher.verify("wrong password", legacy)
    assert hasher.must_update(legacy)


@pytest.mark.parametrize(
    "stored",
    [
        "argon2$argon2id$v=19$garbage",
        "argon2$argon2id$v=19$m=7168,t=5,p=1$c2FsdA$aGFzaA",
        "argon2$argon2id$v=19$m=7168,t=5,p=1$$",
    ],
)
def test_an_unparsable_stored_hash_is_a_wrong_password_not_an_error(stored: str) -> None:
    assert get_hasher("default").verify(PASSWORD, stored) is False


def test_login_upgrades_an_older_hash_to_the_current_parameters(auth: AuthApi) -> None:
    legacy = _argon2_cffi_hash(PASSWORD, memory_cost=19456, time_cost=2, salt=b"abcdefghijklmnopqrstuv")
    user = UserFactory(password=legacy)

    auth.login(user.email)

    upgraded = User.objects.get(pk=user.pk).password
    assert upgraded.startswith("argon2$argon2id$v=19$m=7168,t=5,p=1$")
    assert check_password(PASSWORD, upgraded)
    auth.login(user.email)
    assert User.objects.get(pk=user.pk).password == upgraded


def test_the_dummy_verification_uses_the_current_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashers, "_dummy", None)
    hashers.dummy_verify("anything")
    assert hashers._dummy is not None
    assert hashers._dummy[1].startswith("argon2$argon2id$v=19$m=7168,t=5,p=1$")

    with override_settings(PASSWORD_ARGON2_MEMORY_KIB=9216, PASSWORD_ARGON2_TIME_COST=4):
        hashers.dummy_verify("anything")
        assert hashers._dummy[1].startswith("argon2$argon2id$v=19$m=9216,t=4,p=1$")
