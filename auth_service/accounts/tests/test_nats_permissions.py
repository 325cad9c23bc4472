"""The auth bridge's NATS identity allows every subject the service serves, and the gateway may send each of them."""

from __future__ import annotations

from auth_service.handlers import HANDLERS
from common.conf.nats_trust import identities


def test_every_auth_subject_is_served_by_the_bridge_identity_and_sent_by_the_gateways() -> None:
    trust = identities()
    assert set(HANDLERS) <= set(trust["auth-bridge"].subscribe)
    assert set(HANDLERS) <= set(trust["gateway"].publish)
    # The events stream's subjects are published by auth processes, never served as requests.
    assert not any(subject.startswith("auth.user.") for subject in HANDLERS)
