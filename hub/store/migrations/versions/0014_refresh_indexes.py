"""Refresh indexes: ingest's person index reads erasures and changed records in order.

Before each batch ingest asks the audit trail for the erasures recorded after its mark (by
action and seq) and the person records updated since its records mark; without these indexes
both are scans. An erasure deletes the household links naming the child at either end: the
primary key (a, b, kind) serves ``a``; ``b`` gets its own index, or each erasure scans the
links under the write lock.

Revision ID: 0014
Revises: 0006 (audit_records)
Depends on: 0005 (identity_person_records, identity_household_links)
Create Date: 2026-11-29
"""

from alembic import op

revision = "0014"
down_revision = "0006"
branch_labels = None
depends_on = "0005"


def upgrade() -> None:
    op.create_index("ix_audit_records_action_seq", "audit_records", ["action", "seq"])
    op.create_index(
        "ix_identity_person_records_updated_at", "identity_person_records", ["updated_at"]
    )
    op.create_index("ix_identity_household_links_b", "identity_household_links", ["b"])


def downgrade() -> None:
    op.drop_index("ix_identity_household_links_b", table_name="identity_household_links")
    op.drop_index("ix_identity_person_records_updated_at", table_name="identity_person_records")
    op.drop_index("ix_audit_records_action_seq", table_name="audit_records")
