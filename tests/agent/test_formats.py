"""Conversions at the edges: timestamps that no calendar shows are clamped, never raised."""

from __future__ import annotations

import pytest

from sensor_agent.formats import iso_utc


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (1_795_597_200.0, "2026-11-25T09:00:00.000Z"),
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1e13, "9999-12-31T23:59:59.998Z"),
        (float("inf"), "9999-12-31T23:59:59.998Z"),
        (-1e13, "0001-01-01T00:00:00.000Z"),
        (float("-inf"), "0001-01-01T00:00:00.000Z"),
        (float("nan"), "1970-01-01T00:00:00.000Z"),
    ],
)
def test_iso_utc(ts: float, text: str) -> None:
    assert iso_utc(ts) == text
