"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 16:08:39.457159
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("incident", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("result", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("result_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.create_index("ix_actions_at", ["at"], unique=False)
        batch_op.create_index("ix_actions_incident", ["incident", "at"], unique=False)
        batch_op.create_index("ix_actions_request", ["request_id"], unique=False)

    op.create_table(
        "counters",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "name"),
    )
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("ip", sa.String(length=15), nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("first_seen_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("detected_at", sa.Float(), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("customer_label", sa.String(length=16), nullable=True),
        sa.Column("operator_label", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "event_id", name="uq_events_site_event"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_incident", ["site_id", "incident_id", "detected_at"], unique=False
        )
        batch_op.create_index("ix_events_seq", ["site_id", "agent_id", "seq"], unique=False)
        batch_op.create_index("ix_events_stored", ["stored_at"], unique=False)

    op.create_table(
        "hosts",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("ip", sa.String(length=15), nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("first_seen", sa.String(length=40), nullable=True),
        sa.Column("last_seen", sa.String(length=40), nullable=True),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "agent_id", "mac"),
    )
    op.create_table(
        "incidents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("ip", sa.String(length=15), nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("kinds", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.Float(), nullable=False),
        sa.Column("detected_at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=80), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("operator_label", sa.String(length=16), nullable=True),
        sa.Column("customer_label", sa.String(length=16), nullable=True),
        sa.Column("customer_acked_at", sa.Float(), nullable=True),
        sa.Column("customer_notified_at", sa.Float(), nullable=True),
        sa.Column("responded_at", sa.Float(), nullable=True),
        sa.Column("isolation", sa.String(length=24), nullable=True),
        sa.Column("restored_at", sa.Float(), nullable=True),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "incident_id", name="uq_incidents_site_incident"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_culprit", ["site_id", "mac"], unique=False)
        batch_op.create_index(
            "ix_incidents_queue", ["status", "level", "received_at"], unique=False
        )
        batch_op.create_index("ix_incidents_site", ["site_id", "status"], unique=False)

    op.create_table(
        "notifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("incident", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("by", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_site", ["site_id", "at"], unique=False)

    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("mqtt_user", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("bridge_online", sa.Boolean(), nullable=True),
        sa.Column("bridge_at", sa.Float(), nullable=True),
        sa.Column("last_seen_at", sa.Float(), nullable=True),
        sa.Column("may_see", sa.Boolean(), nullable=True),
        sa.Column("may_evacuate", sa.Boolean(), nullable=True),
        sa.Column("consent_ts", sa.Float(), nullable=True),
        sa.Column("evacuation", sa.JSON(), nullable=True),
        sa.Column("evacuation_ts", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("site_id"),
        sa.UniqueConstraint("mqtt_user"),
    )
    op.create_table(
        "agents",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("status_at", sa.Float(), nullable=True),
        sa.Column("last_seen_at", sa.Float(), nullable=True),
        sa.Column("info", sa.JSON(), nullable=True),
        sa.Column("info_ts", sa.Float(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("state_ts", sa.Float(), nullable=True),
        sa.Column("quarantine", sa.JSON(), nullable=True),
        sa.Column("quarantine_ts", sa.Float(), nullable=True),
        sa.Column("hosts_ts", sa.Float(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("oldest_seq", sa.BigInteger(), nullable=True),
        sa.Column("seq_done", sa.BigInteger(), nullable=False),
        sa.Column("seq_epoch_at", sa.Float(), nullable=False),
        sa.Column("gap_since", sa.Float(), nullable=True),
        sa.Column("replay_at", sa.Float(), nullable=True),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.Column("events_lost", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "agent_id"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.drop_table("agents")
    op.drop_table("sites")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_site")

    op.drop_table("notifications")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_site")
        batch_op.drop_index("ix_incidents_queue")
        batch_op.drop_index("ix_incidents_culprit")

    op.drop_table("incidents")
    op.drop_table("hosts")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_stored")
        batch_op.drop_index("ix_events_seq")
        batch_op.drop_index("ix_events_incident")

    op.drop_table("events")
    op.drop_table("counters")
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_index("ix_actions_request")
        batch_op.drop_index("ix_actions_incident")
        batch_op.drop_index("ix_actions_at")

    op.drop_table("actions")
