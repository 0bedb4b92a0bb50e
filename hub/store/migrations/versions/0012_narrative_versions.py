"""Narrative versions: a counter per child, bumped whenever the child's entries change.

Readers keep what they decided with (the entries' clear columns, the child's situation) and
re-read only when the counter moved. Backfilled at 1 for every child with entries.

Revision ID: 0012
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    versions = op.create_table(
        "narrative_versions",
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("child_id", name="pk_narrative_versions"),
    )
    entries = sa.table("narrative_entries", sa.column("child_id"))
    op.get_bind().execute(
        versions.insert().from_select(
            ["child_id", "version"],
            sa.select(entries.c.child_id, sa.literal(1, sa.BigInteger())).distinct(),
        )
    )


def downgrade() -> None:
    op.drop_table("narrative_versions")
