"""Alert households: which children's alert states hold each opaque household key.

Fills the index from the states already saved, so an upgraded hub finds the children at an
address at once (no replay needed).

Revision ID: 0011
Revises: 0001
Depends on: 0004 (alert_child_states, read for the backfill)
Create Date: 2026-12-02
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0001"
branch_labels = None
depends_on = "0004"

_BATCH = 500


def upgrade() -> None:
    table = op.create_table(
        "alert_household_keys",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("key", "child_id", name="pk_alert_household_keys"),
    )
    op.create_index("ix_alert_household_keys_child_id", "alert_household_keys", ["child_id", "key"])
    states = sa.table("alert_child_states", sa.column("child_id"), sa.column("state"))
    bind = op.get_bind()
    after = ""
    while True:  # pages of states in child-id order, each read in full before writing
        page = bind.execute(
            sa.select(states.c.child_id, states.c.state)
            .where(states.c.child_id > after)
            .order_by(states.c.child_id)
            .limit(_BATCH)
        ).all()
        if not page:
            break
        rows = [
            {"key": key, "child_id": child_id}
            for child_id, state in page
            for key in sorted(set(json.loads(state).get("household_keys") or ()))
        ]
        if rows:
            op.bulk_insert(table, rows)
        after = page[-1][0]


def downgrade() -> None:
    op.drop_index("ix_alert_household_keys_child_id", table_name="alert_household_keys")
    op.drop_table("alert_household_keys")
