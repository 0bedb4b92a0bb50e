"""Erasure indexes: ingest reads erasures from the audit trail; erasures delete links at both ends.

Ingest's person index now reads the erasures recorded in the audit trail after its mark (by
action and seq) instead of the keys' destruction times, so the destroyed-at index 0014 made
goes. An erasure deletes the household links naming the child at either end: the primary key
(a, b, kind) serves ``a``; ``b`` gets its own index, or each erasure scans the links.

Revision ID: 0015
Revises: 0014
Depends on: 0006 (audit_records)
Create Date: 2026-11-29
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = "0006"


def upgrade() -> None:
    op.drop_index("ix_child_data_keys_destroyed_at", table_name="child_data_keys")
    op.create_index("ix_audit_records_action_seq", "audit_records", ["action", "seq"])
    op.create_index("ix_identity_household_links_b", "identity_household_links", ["b"])


def downgrade() -> None:
    op.drop_index("ix_identity_household_links_b", table_name="identity_household_links")
    op.drop_index("ix_audit_records_action_seq", table_name="audit_records")
    op.create_index("ix_child_data_keys_destroyed_at", "child_data_keys", ["destroyed_at"])
