"""What the throttles count as one client: an IPv4 address, or an IPv6 /64 (pure rule, no server needed)."""

from __future__ import annotations

import pytest

from common.throttling import throttle_source


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("", ""),
    ],
)
def test_one_source_per_ipv4_address_and_per_ipv6_64(address: str, source: str) -> None:
    assert throttle_source(address) == source


def test_two_ipv6_networks_are_two_sources() -> None:
    assert throttle_source("2001:db8:1:2::1") != throttle_source("2001:db8:1:3::1")
