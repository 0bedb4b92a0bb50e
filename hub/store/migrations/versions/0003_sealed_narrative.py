"""Sealed narrative: entries projected after their child's key was destroyed are marked erased.

Narrative ``summary``/``payload`` now hold sealed values and the person index holds keyed
digests (no column change for those). Rows written before this revision hold plain text:
rebuild the projection with `hub replay` after upgrading; a person index written before it
holds plain identifiers that no longer match and must be rebuilt from a fresh store (ADR 0006).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("narrative_entries") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("narrative_entries") as batch:
        batch.drop_column("erased_at")
