"""Fixtures of the PSOC tests: one throw-away PostgreSQL server per session, and a fresh
database per test on SQLite or PostgreSQL (``db_url`` runs a test on both)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from psoc.db.engine import make_engine, upgrade
from psoc.store import Store
from tests.psoc.pg import Postgres

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with Postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'psoc.sqlite'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.create_database(f"t{next(_names)}")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield Store(engine)
    engine.dispose()
