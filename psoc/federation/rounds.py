"""Each federated round's global model, kept by the PSOC: version, feature version, metrics.

``version`` numbers every stored global model of this PSOC, across runs, so a site can tell a
newer model from an older one whatever run made it. The model is the integration's model form
(the template the run started from, with the federated weights, precision and label counts), so
a site loads it with the code that loads its own models. A SQLite file of its own: the
ServerApp runs in Flower's process, in Flower's environment, not in the PSOC's service.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Round:
    """One stored global model."""

    version: int
    run_id: str
    round: int
    feature_version: int
    model: dict[str, Any]
    metrics: dict[str, Any]
    privacy: dict[str, Any] | None
    sites: list[tuple[str, str]]  # (site id, agent id) that trained it
    created: float


class RoundStore:
    """Append-only table of global models, newest last."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS rounds ("
            " version INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,"
            " round INTEGER NOT NULL, feature_version INTEGER NOT NULL, model TEXT NOT NULL,"
            " metrics TEXT NOT NULL, privacy TEXT, sites TEXT NOT NULL, created REAL NOT NULL)"
        )

    def add(
        self,
        *,
        run_id: str,
        round_number: int,
        feature_version: int,
        model: dict[str, Any],
        metrics: dict[str, Any],
        privacy: dict[str, Any] | None,
        sites: list[tuple[str, str]],
        now: float | None = None,
    ) -> int:
        """Store a round's global model; returns its version."""
        cursor = self._db.execute(
            "INSERT INTO rounds (run_id, round, feature_version, model, metrics, privacy,"
            " sites, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                round_number,
                feature_version,
                json.dumps(model),
                json.dumps(metrics),
                None if privacy is None else json.dumps(privacy),
                json.dumps(sorted(set(sites))),
                time.time() if now is None else now,
            ),
        )
        return int(cursor.lastrowid or 0)

    def _round(self, row: tuple[Any, ...]) -> Round:
        version, run_id, number, feature_version, model, metrics, privacy, sites, created = row
        return Round(
            version=int(version),
            run_id=str(run_id),
            round=int(number),
            feature_version=int(feature_version),
            model=json.loads(model),
            metrics=json.loads(metrics),
            privacy=None if privacy is None else json.loads(privacy),
            sites=[(str(s), str(a)) for s, a in json.loads(sites)],
            created=float(created),
        )

    def latest(self) -> Round | None:
        row = self._db.execute("SELECT * FROM rounds ORDER BY version DESC LIMIT 1").fetchone()
        return None if row is None else self._round(row)

    def all(self) -> list[Round]:
        return [self._round(r) for r in self._db.execute("SELECT * FROM rounds ORDER BY version")]

    def close(self) -> None:
        self._db.close()
