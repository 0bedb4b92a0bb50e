"""Person records carry their write's place in commit order, not only the writer's clock.

Ingest's refresh read the person records with ``updated_at >= mark``, a time from the writing
process's clock, taken before its transaction committed. A write stamped earlier but committed
later (another ingest process, a merge through the API), or one from a process whose clock ran
behind, fell below the mark and was never read: the running ingest matched new records
without it. ``version`` orders writes by commit: PostgreSQL's transaction id, read against the
snapshot's xmin; on SQLite the seq of ``identity_change_head``, taken under the database's
write lock (ADR 0022).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_VERSION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("identity_person_records", sa.Column("version", _VERSION, nullable=True))
    op.create_index("ix_identity_person_records_version", "identity_person_records", ["version"])
    head = op.create_table(
        "identity_change_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", _VERSION, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_change_head"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0}])


def downgrade() -> None:
    op.drop_table("identity_change_head")
    op.drop_index("ix_identity_person_records_version", table_name="identity_person_records")
    with op.batch_alter_table("identity_person_records") as batch:
        batch.drop_column("version")
