"""Allowlist: MACs in any spelling, IP addresses and networks."""

from __future__ import annotations

import pytest

from custom_components.lan_guard.allowlist import Allowlist, normalize_entry


@pytest.mark.parametrize(
    ("entry", "normal"),
    [
        ("AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"),
        ("aabbccddeeff", "aa:bb:cc:dd:ee:ff"),
        (" aa:bb:cc:dd:ee:ff ", "aa:bb:cc:dd:ee:ff"),
        ("192.168.1.10", "192.168.1.10/32"),
        ("192.168.1.77/24", "192.168.1.0/24"),
        ("fe80::1", "fe80::1/128"),
    ],
)
def test_entries_are_normalised(entry: str, normal: str) -> None:
    assert normalize_entry(entry) == normal


@pytest.mark.parametrize(
    "entry", ["kitchen", "aa:bb:cc:dd:ee", "aa:bb-cc:dd:ee:ff", "300.1.1.1", ""]
)
def test_anything_else_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        normalize_entry(entry)


def test_membership_by_mac_or_ip() -> None:
    allowlist = Allowlist.parse(["AA:BB:CC:DD:EE:FF", "192.168.1.0/28", "fe80::1"])
    assert allowlist.contains({"mac": "aa:bb:cc:dd:ee:ff", "ip": None})
    assert allowlist.contains({"mac": "00:00:00:00:00:01", "ip": "192.168.1.15"})
    assert not allowlist.contains({"mac": "00:00:00:00:00:01", "ip": "192.168.1.16"})
    assert not allowlist.contains({"mac": "00:00:00:00:00:01", "ip": None})
    assert not Allowlist.parse([]).contains({"mac": "aa:bb:cc:dd:ee:ff", "ip": "10.0.0.1"})
