"""First action per actor type and request times: steps keep their actor_type, handoffs their first human/ai step.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _delta(column: str) -> str:
    # NULL without such a step (GREATEST alone would turn that NULL into 0).
    return (
        f"CASE WHEN {column} IS NOT NULL"
        f" THEN GREATEST(0, EXTRACT(EPOCH FROM ({column} - claimed_at)))::double precision END"
    )


def upgrade() -> None:
    # Steps stored before this revision have no actor_type (NULL): they still count as a first action of
    # any kind; `python -m analytics.rebuild` fills it in from the topics.
    op.add_column("steps", sa.Column("actor_type", sa.Text))
    op.add_column("handoffs", sa.Column("requested_at", sa.DateTime(timezone=True)))
    # Earliest step of the session with that actor_type at or after claimed_at (kept for the current claim).
    op.add_column("handoffs", sa.Column("first_human_at", sa.DateTime(timezone=True)))
    op.add_column("handoffs", sa.Column("first_ai_at", sa.DateTime(timezone=True)))
    op.add_column(
        "handoffs", sa.Column("human_delta_s", sa.Float, sa.Computed(_delta("first_human_at"), persisted=True))
    )
    op.add_column("handoffs", sa.Column("ai_delta_s", sa.Float, sa.Computed(_delta("first_ai_at"), persisted=True)))
    # The section 5 query reads one account's window of this index only: it now carries the per-actor deltas too.
    op.drop_index("ix_handoffs_account_claimed", table_name="handoffs")
    op.create_index(
        "ix_handoffs_account_claimed",
        "handoffs",
        ["account_id", "effective_claimed_at"],
        postgresql_include=["delta_s", "human_delta_s", "ai_delta_s"],
        postgresql_where=sa.text("effective_claimed_at IS NOT NULL"),
    )
    # The exclusions read the account's unclaimed handoffs requested in the window, and nothing else.
    op.create_index(
        "ix_handoffs_account_unclaimed_requested",
        "handoffs",
        ["account_id", "requested_at"],
        postgresql_include=["claim_version"],
        postgresql_where=sa.text("effective_claimed_at IS NULL AND requested_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_handoffs_account_unclaimed_requested", table_name="handoffs")
    op.drop_index("ix_handoffs_account_claimed", table_name="handoffs")
    op.create_index(
        "ix_handoffs_account_claimed",
        "handoffs",
        ["account_id", "effective_claimed_at"],
        postgresql_include=["delta_s"],
        postgresql_where=sa.text("effective_claimed_at IS NOT NULL"),
    )
    for column in ("ai_delta_s", "human_delta_s", "first_ai_at", "first_human_at", "requested_at"):
        op.drop_column("handoffs", column)
    op.drop_column("steps", "actor_type")
