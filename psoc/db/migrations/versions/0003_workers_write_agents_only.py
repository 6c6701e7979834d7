"""the workers write agents only: a site's last seen is its agents'; room for HOT updates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 18:30:00.000000

Every batch a worker stores touches the rows of the agents and incidents it heard from. A
site's ``last_seen_at`` was one more row per site and batch for the workers to write (and
to wait for each other on): it is now the latest of its agents' (``Store.sites_overview``).
On PostgreSQL, agents and incidents keep free room in their pages (fillfactor), so that an
update that changes no indexed column is a heap-only tuple update: no index is written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FILLFACTOR = {"agents": 50, "incidents": 70}


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
    if op.get_bind().dialect.name == "postgresql":
        for table, fill in FILLFACTOR.items():
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {fill})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in FILLFACTOR:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.Float(), nullable=True))
