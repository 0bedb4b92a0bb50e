"""Refresh indexes: ingest's person index reads erasures and changed records by time.

Before each batch ingest asks for the data keys destroyed since its erasure mark and the person
records updated since its records mark; without these indexes both are full scans.

Revision ID: 0014
Revises: 0001
Depends on: 0002 (child_data_keys), 0005 (identity_person_records)
Create Date: 2026-11-29
"""

from alembic import op

revision = "0014"
down_revision = "0001"
branch_labels = None
depends_on = ("0002", "0005")


def upgrade() -> None:
    op.create_index("ix_child_data_keys_destroyed_at", "child_data_keys", ["destroyed_at"])
    op.create_index(
        "ix_identity_person_records_updated_at", "identity_person_records", ["updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_identity_person_records_updated_at", table_name="identity_person_records")
    op.drop_index("ix_child_data_keys_destroyed_at", table_name="child_data_keys")
