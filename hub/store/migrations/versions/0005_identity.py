"""Identity: person records, possible-match reviews, merges and household links.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_person_records",
        sa.Column("record_id", sa.String(160), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(16), nullable=True),
        sa.Column("postcode", sa.String(16), nullable=True),
        sa.Column("address_key", sa.String(120), nullable=True),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("blocking_keys", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name="pk_identity_person_records"),
    )
    op.create_index("ix_identity_person_records_child_id", "identity_person_records", ["child_id"])
    op.create_table(
        "identity_reviews",
        sa.Column("review_id", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(160), nullable=False),
        sa.Column("provisional_child_id", sa.String(64), nullable=False),
        sa.Column("candidate_child_id", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("breakdown", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("review_id", name="pk_identity_reviews"),
    )
    op.create_index(
        "ix_identity_reviews_status_created", "identity_reviews", ["status", "created_at"]
    )
    op.create_table(
        "identity_merges",
        sa.Column("merge_id", sa.String(64), nullable=False),
        sa.Column("surviving_child_id", sa.String(64), nullable=False),
        sa.Column("merged_child_id", sa.String(64), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=False),
        sa.Column("review_id", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(128), nullable=True),
        sa.Column("undo_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("merge_id", name="pk_identity_merges"),
    )
    op.create_index(
        "ix_identity_merges_surviving_child_id", "identity_merges", ["surviving_child_id"]
    )
    op.create_index("ix_identity_merges_merged_child_id", "identity_merges", ["merged_child_id"])
    op.create_table(
        "identity_household_links",
        sa.Column("a", sa.String(80), nullable=False),
        sa.Column("b", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_event_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("a", "b", "kind", name="pk_identity_household_links"),
    )


def downgrade() -> None:
    op.drop_table("identity_household_links")
    op.drop_index("ix_identity_merges_merged_child_id", table_name="identity_merges")
    op.drop_index("ix_identity_merges_surviving_child_id", table_name="identity_merges")
    op.drop_table("identity_merges")
    op.drop_index("ix_identity_reviews_status_created", table_name="identity_reviews")
    op.drop_table("identity_reviews")
    op.drop_index("ix_identity_person_records_child_id", table_name="identity_person_records")
    op.drop_table("identity_person_records")
