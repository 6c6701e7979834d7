"""Bounded JSON decoding: nesting measured without recursion, strings do not count."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_agent.safejson import TooDeep, loads, nesting


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),
        (b'{"a": "\\"[[[["}', 1),
        (b'["\\\\", [[]]]', 3),
    ],
)
def test_nesting(raw: bytes, depth: int) -> None:
    assert nesting(raw, 100) == depth


def test_measuring_stops_past_the_limit_and_never_recurses() -> None:
    assert nesting(b"[" * 1_000_000, 8) == 9
    with pytest.raises(TooDeep, match="nested deeper than 8 levels"):
        loads(b"[" * 100_000 + b"]" * 100_000, max_depth=8)
    with pytest.raises(ValueError):  # TooDeep is a ValueError: the "not JSON" path takes it
        loads("[" * 100_000, max_depth=8)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), children, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_the_measure_agrees_with_the_document(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    raw = json.dumps(value).encode()
    assert nesting(raw, 100) == depth(value)
    assert loads(raw, max_depth=depth(value)) == value
