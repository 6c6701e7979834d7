"""The owner's labelled examples (sensor_agent/federation/examples.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sensor_agent.federation.examples import Example, ExampleError, ExampleStore, parse_example

NOW = 1_800_000_000.0


def example(i: int, version: int = 3, alarm: bool = False, dim: int = 3) -> Example:
    return Example(f"label-{i}", version, tuple(float(i + k) for k in range(dim)), alarm)


def test_examples_of_the_asked_version_and_length_come_back_oldest_first(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "examples.sqlite")
    store.add(example(1, alarm=True), NOW)
    store.add(example(2, version=2), NOW + 1)  # another feature version
    store.add(example(3, dim=4), NOW + 2)  # another length
    store.add(example(4), NOW + 3)
    xs, ys = store.arrays(3, 3, NOW + 4)
    assert xs.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] and ys.tolist() == [True, False]
    assert store.count() == 4


def test_a_new_label_of_the_same_event_replaces_the_old_one(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "examples.sqlite")
    store.add(example(1, alarm=False), NOW)
    store.add(example(1, alarm=True), NOW + 1)
    assert store.count() == 1 and store.arrays(3, 3, NOW + 2)[1].tolist() == [True]


def test_the_store_is_bounded_by_count_and_age(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "examples.sqlite", max_rows=3, max_age_s=100.0)
    for i in range(5):
        store.add(example(i), NOW + i)
    assert store.count() == 3
    assert store.arrays(3, 3, NOW + 5)[0][:, 0].tolist() == [2.0, 3.0, 4.0]
    assert len(store.arrays(3, 3, NOW + 103.5)[1]) == 1  # older than 100 s: not trained on
    store.add(example(9), NOW + 150)  # and pruned at the next write
    assert store.count() == 1


def test_the_owner_can_delete_everything_and_it_survives_a_restart(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path / "examples.sqlite")
    store.add(example(1), NOW)
    store.close()
    again = ExampleStore(tmp_path / "examples.sqlite")
    assert again.count() == 1
    assert again.delete_all() == 1 and again.count() == 0


GOOD: dict[str, Any] = {
    "schema": 1,
    "id": "label-1",
    "feature_version": 3,
    "features": [1.0, 0, 0.5],
    "label": "alarm",
}


def test_a_well_formed_payload_is_an_example() -> None:
    assert parse_example(GOOD) == Example("label-1", 3, (1.0, 0.0, 0.5), True)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"id": ""}, "'id'"),
        ({"id": "x" * 65}, "'id'"),
        ({"feature_version": True}, "feature_version"),
        ({"feature_version": 0}, "feature_version"),
        ({"features": []}, "'features'"),
        ({"features": [0.0] * 257}, "'features'"),
        ({"features": [float("nan")]}, "finite"),
        ({"features": ["1"]}, "finite"),
        ({"features": [True]}, "finite"),
        ({"label": "spam"}, "'label'"),
    ],
)
def test_a_malformed_payload_is_refused_with_its_reason(change: dict[str, Any], why: str) -> None:
    with pytest.raises(ExampleError, match=why):
        parse_example({**GOOD, **change})
