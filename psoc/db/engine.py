"""Engines for SQLite (the embedded default) and PostgreSQL, and Alembic migrations.

``sqlite:///path`` needs nothing installed; ``postgresql+psycopg://user@host:port/db`` is the
production store. Both are brought to the newest schema by ``upgrade`` (Alembic, the
migrations in ``psoc/db/migrations``), never by ``create_all``: what tests run is what a
deployment runs.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_URL = "sqlite:///lan-guard-psoc.sqlite"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so a worker and the
    console can share the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # No pre-ping (a round trip per transaction): a connection the server dropped fails its
    # statement, the pool is invalidated, and the caller retries (the workers do).
    return create_engine(url, pool_size=5, max_overflow=5)


def alembic_config() -> Config:
    """Alembic's configuration without an ini file: the migrations ship in the package."""
    config = Config()
    config.set_main_option("script_location", "psoc.db:migrations")
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (``base``: empty)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
