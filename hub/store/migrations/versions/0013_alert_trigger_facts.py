"""Alert trigger facts: the sharing facts of each alert's trigger events, kept with the alert.

A nullable JSON text column on ``alerts``, so the alert stream can decide an alert before the
narrative projector has stored its triggers. Alerts raised before it keep NULL and are decided
from the narrative store alone, as before.

Revision ID: 0013
Revises: 0001
Depends on: 0004 (alerts)
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0001"
branch_labels = None
depends_on = "0004"


def upgrade() -> None:
    op.add_column("alerts", sa.Column("trigger_facts", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("trigger_facts")
