"""The password policy as a client sees it: the original's message word for word (SPEC §2), Django's beside it."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from devstack.testing.stack import RunningStack
from gateway.api.tests.e2e import Account, Api, new_account, sign_up

pytestmark = pytest.mark.e2e

# Written out here, not imported: existing clients match this exact text.
RULE = "The password must have an uppercase letter, a lowercase letter, a number, a symbol and be 10 characters long"


def refused_signup(account: Account) -> dict[str, object]:
    response = sign_up(Api(), account)
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body, dict)
    # Nothing was created: the same e-mail and password do not log in.
    login = Api().post("/api/login", {"slug": account.email, "password": account.password})
    assert login.status_code == 401
    return body


@pytest.mark.parametrize("password", ["Sh0rt!pw", "alllowercase1!", "ALLUPPERCASE1!", "NoDigitsHere!", "NoSymbol12345"])
def test_signup_with_a_password_breaking_the_rule_is_400_with_the_original_message(
    stack: RunningStack, password: str
) -> None:
    body = refused_signup(replace(new_account(), password=password))

    assert body == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": [f"password: {RULE}"],
        "code": "validation_failed",
        "fields": {"password": [RULE]},
    }


def test_djangos_validators_speak_beside_the_rule(stack: RunningStack) -> None:
    common = refused_signup(replace(new_account(), password="password"))
    assert common["fields"] == {"password": [RULE, "This password is too common."]}

    username = f"Janedoe{uuid.uuid4().int % 10**8:08d}"
    similar = refused_signup(replace(new_account(), username=username, password=f"{username}!"))
    assert similar["fields"] == {"password": ["The password is too similar to the username."]}
