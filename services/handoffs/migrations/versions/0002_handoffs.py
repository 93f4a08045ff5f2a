"""Handoffs, their history, and the local view of completed sessions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PRIORITY_RANK_SQL = (
    "CASE priority WHEN 'urgent' THEN 4 WHEN 'high' THEN 3 WHEN 'normal' THEN 2 WHEN 'low' THEN 1 ELSE 0 END"
)


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.Column("session_id", sa.Uuid, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("priority", sa.Text, nullable=False),
        # Stored so that the queue order (priority, then age) can be read off an index.
        sa.Column("priority_rank", sa.SmallInteger, sa.Computed(PRIORITY_RANK_SQL, persisted=True)),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("last_action", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.Uuid, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Uuid),
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_by", sa.Uuid),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution_note", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="ck_handoffs_priority"),
        sa.CheckConstraint("status IN ('open', 'claimed', 'resolved')", name="ck_handoffs_status"),
        sa.CheckConstraint(
            "last_action IN ('requested', 'claimed', 'released', 'resolved')", name="ck_handoffs_last_action"
        ),
        sa.CheckConstraint("version >= 1", name="ck_handoffs_version"),
        # A claim is a pair; only a claimed handoff has one (a resolved one keeps the last claim, if any).
        sa.CheckConstraint("(claimed_by IS NULL) = (claimed_at IS NULL)", name="ck_handoffs_claim_pair"),
        sa.CheckConstraint(
            "status = 'resolved' OR (status = 'claimed') = (claimed_by IS NOT NULL)", name="ck_handoffs_claim_status"
        ),
        sa.CheckConstraint(
            "(status = 'resolved') = (resolved_at IS NOT NULL AND resolved_by IS NOT NULL)",
            name="ck_handoffs_resolution",
        ),
    )
    # At most one live handoff per session, whatever the concurrency: the database is the arbiter.
    op.create_index(
        "ux_handoffs_live_session",
        "handoffs",
        ["session_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('open', 'claimed')"),
    )
    op.create_index(
        "ix_handoffs_queue",
        "handoffs",
        ["account_id", "status", sa.text("priority_rank DESC"), "requested_at"],
    )
    op.create_index("ix_handoffs_claimed_by", "handoffs", ["account_id", "claimed_by"])
    op.create_index("ix_handoffs_session", "handoffs", ["session_id"])

    op.create_table(
        "handoff_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("handoff_id", sa.Uuid, sa.ForeignKey("handoffs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Uuid, nullable=False),
        sa.Column("actor_type", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text),
        sa.UniqueConstraint("handoff_id", "version", name="uq_handoff_history_version"),
        sa.CheckConstraint(
            "action IN ('requested', 'claimed', 'released', 'resolved')", name="ck_handoff_history_action"
        ),
        sa.CheckConstraint("actor_type IN ('user', 'system')", name="ck_handoff_history_actor_type"),
    )
    # The stats card reads the claims of the last 24 hours of one account.
    op.create_index("ix_handoff_history_account_action_at", "handoff_history", ["account_id", "action", "at"])

    op.create_table(
        "completed_sessions",
        sa.Column("session_id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("completed_sessions")
    op.drop_table("handoff_history")
    op.drop_table("handoffs")
