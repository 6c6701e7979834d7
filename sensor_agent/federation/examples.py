"""The owner's labelled examples on the agent's node: a bounded SQLite store, and their payload.

An example is what the integration computed for one labelled event: the feature version, the
feature vector and the label, under the label's id (a new label for the same event replaces the
old one). Nothing else is kept: no address, name, time of the event or evidence, so the store
holds nothing the model's features do not already reduce away. Bounds: ``max_rows`` examples
(the oldest go first) and none older than ``max_age_s``; :meth:`ExampleStore.delete_all` is the
owner's "forget what I contributed".

The store has its own file: the agent's event store is opened exclusively by the running agent,
and the federation runs as its own process.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# A home labels a few events a week: 5,000 examples are years of labels in a few MB.
DEFAULT_MAX_ROWS = 5_000
# A year: behaviour of the home's devices older than that says little about today's.
DEFAULT_MAX_AGE_S = 365 * 86_400.0
# Feature vectors are tens of numbers; a bound keeps one payload from filling the store.
MAX_FEATURES = 256
MAX_ID_LENGTH = 64
EXAMPLE_TOPIC = "training/example"
DELETE_TOPIC = "training/delete"
STATUS_TOPIC = "training/status"


class ExampleError(ValueError):
    """An example payload that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Example:
    """One labelled feature vector, as the integration sent it."""

    example_id: str
    feature_version: int
    features: tuple[float, ...]
    alarm: bool


def parse_example(payload: Mapping[str, Any]) -> Example:
    """The example in a (verified) ``training/example`` payload, or ``ExampleError``."""
    example_id = payload.get("id")
    if not isinstance(example_id, str) or not 0 < len(example_id) <= MAX_ID_LENGTH:
        raise ExampleError(f"'id' must be a string of 1-{MAX_ID_LENGTH} characters")
    version = payload.get("feature_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 2**31:
        raise ExampleError("'feature_version' must be a positive integer")
    features = payload.get("features")
    if not isinstance(features, list) or not 0 < len(features) <= MAX_FEATURES:
        raise ExampleError(f"'features' must be a list of 1-{MAX_FEATURES} numbers")
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in features
    ):
        raise ExampleError("'features' must hold finite numbers only")
    label = payload.get("label")
    if label not in ("normal", "alarm"):
        raise ExampleError("'label' must be 'normal' or 'alarm'")
    return Example(example_id, version, tuple(float(v) for v in features), label == "alarm")


class ExampleStore:
    """Labelled examples in SQLite, bounded by count and age; safe across threads."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        if max_rows < 1 or max_age_s <= 0:
            raise ValueError("max_rows and max_age_s must be positive")
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS examples ("
            " example_id TEXT PRIMARY KEY, feature_version INTEGER NOT NULL,"
            " features TEXT NOT NULL, alarm INTEGER NOT NULL, received REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_received ON examples (received)")

    def add(self, example: Example, now: float) -> None:
        """Keep ``example`` (replacing one with the same id), then apply the bounds."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO examples VALUES (?, ?, ?, ?, ?)",
                (
                    example.example_id,
                    example.feature_version,
                    json.dumps(example.features),
                    int(example.alarm),
                    now,
                ),
            )
            self._db.execute("DELETE FROM examples WHERE received < ?", (now - self.max_age_s,))
            self._db.execute(
                "DELETE FROM examples WHERE example_id IN (SELECT example_id FROM examples"
                " ORDER BY received DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (self.max_rows,),
            )
            self._db.execute("COMMIT")

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM examples").fetchone()[0])

    def delete_all(self) -> int:
        """Forget every example (the owner's request); returns how many there were."""
        with self._lock:
            deleted = self._db.execute("DELETE FROM examples").rowcount
        return int(deleted)

    def arrays(
        self, feature_version: int, dimension: int, now: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The examples of this feature version and vector length, oldest first (others are
        of a model this federation does not train), none past the age bound."""
        with self._lock:
            rows = self._db.execute(
                "SELECT features, alarm FROM examples WHERE feature_version = ?"
                " AND received >= ? ORDER BY received, rowid",
                (feature_version, now - self.max_age_s),
            ).fetchall()
        vectors = [json.loads(features) for features, _ in rows]
        keep = [i for i, vector in enumerate(vectors) if len(vector) == dimension]
        xs = np.array([vectors[i] for i in keep], dtype=np.float64).reshape(len(keep), dimension)
        ys = np.array([bool(rows[i][1]) for i in keep], dtype=bool)
        return xs, ys

    def close(self) -> None:
        with self._lock:
            self._db.close()
