"""Narrative merges: the identity merges the narrative follows, projected from `hub.events`.

Revision ID: 0010
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "narrative_merges",
        sa.Column("merge_id", sa.String(64), primary_key=True),
        sa.Column("surviving_child_id", sa.String(64), nullable=False),
        sa.Column("merged_child_id", sa.String(64), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_narrative_merges_surviving_child_id", "narrative_merges", ["surviving_child_id"]
    )
    op.create_index("ix_narrative_merges_merged_child_id", "narrative_merges", ["merged_child_id"])


def downgrade() -> None:
    op.drop_index("ix_narrative_merges_merged_child_id", table_name="narrative_merges")
    op.drop_index("ix_narrative_merges_surviving_child_id", table_name="narrative_merges")
    op.drop_table("narrative_merges")
