"""Crypto: per-child data keys, stored wrapped by a key-encryption key (tombstoned on erasure).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "child_data_keys",
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("kek_id", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("child_id", "key_version", name="pk_child_data_keys"),
    )
    op.create_index("ix_child_data_keys_kek_id", "child_data_keys", ["kek_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_child_data_keys_kek_id", table_name="child_data_keys")
    op.drop_table("child_data_keys")
