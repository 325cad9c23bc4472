"""main_api's bridge identity allows every subject the service serves, and the gateway may send each of them."""

from __future__ import annotations

import pytest

from common.conf.nats_trust import identities
from main_api.handlers import HANDLERS

# The suite's fixtures tidy the database after every test.
pytestmark = pytest.mark.django_db


def test_every_main_subject_is_served_by_the_bridge_identity_and_sent_by_the_gateways() -> None:
    trust = identities()
    assert set(HANDLERS) <= set(trust["main-bridge"].subscribe)
    assert set(HANDLERS) <= set(trust["gateway"].publish)
    assert not set(HANDLERS) & set(trust["auth-bridge"].subscribe)
