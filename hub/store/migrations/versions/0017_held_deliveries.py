"""Held deliveries: each narrative batch looks for the held deliveries of its children.

A topic delivery a sharing rule's delay holds stays in ``deliveries`` as ``held`` until it is
decided again; every narrative batch asks for its children's held rows (their story may now
release them), so the ledger gets an index by child and status.

Revision ID: 0017
Revises: 0016
Depends on: 0007 (deliveries)
Create Date: 2026-11-29
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = "0007"


def upgrade() -> None:
    op.create_index("ix_deliveries_child_id_status", "deliveries", ["child_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_child_id_status", table_name="deliveries")
