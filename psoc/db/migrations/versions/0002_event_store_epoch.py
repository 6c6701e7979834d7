"""the agent's event store epoch (agents and events)

An agent's ``seq`` numbers are those of one event store, named by its ``epoch``: a new store
(wiped, moved aside, a new machine) numbers its events from 1 again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:41:35.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.String(length=32), nullable=True))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("epoch")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("epoch")
