"""Initial store: person index, ingest de-duplication, narrative projection, positions, redrives.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "children",
        sa.Column("child_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("child_id", name="pk_children"),
    )
    op.create_table(
        "child_identifiers",
        sa.Column("system", sa.String(80), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system", "value", name="pk_child_identifiers"),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.child_id"],
            name="fk_child_identifiers_child_id_children",
        ),
    )
    op.create_index(
        "ix_child_identifiers_child_id", "child_identifiers", ["child_id"], unique=False
    )
    op.create_table(
        "ingested_events",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_ingested_events"),
    )
    op.create_table(
        "narrative_entries",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("family", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("agency_kind", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("sensitivity", sa.Text(), nullable=False),
        sa.Column("supersedes", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("superseded_by", sa.String(128), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("log_partition", sa.Integer(), nullable=False),
        sa.Column("log_offset", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_narrative_entries"),
    )
    op.create_index(
        "ix_narrative_child_time",
        "narrative_entries",
        ["child_id", "occurred_at", "event_id"],
        unique=False,
    )
    op.create_table(
        "projection_positions",
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "topic", "partition", name="pk_projection_positions"),
    )
    op.create_table(
        "dlq_redrives",
        sa.Column("dlq_id", sa.String(64), nullable=False),
        sa.Column("redriven_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("target_topic", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("dlq_id", name="pk_dlq_redrives"),
    )


def downgrade() -> None:
    op.drop_table("dlq_redrives")
    op.drop_table("projection_positions")
    op.drop_index("ix_narrative_child_time", table_name="narrative_entries")
    op.drop_table("narrative_entries")
    op.drop_table("ingested_events")
    op.drop_index("ix_child_identifiers_child_id", table_name="child_identifiers")
    op.drop_table("child_identifiers")
    op.drop_table("children")
