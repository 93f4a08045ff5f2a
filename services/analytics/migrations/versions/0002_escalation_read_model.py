"""The escalation read model: step times per session, claim state and first action per handoff, watermarks.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only what the metric needs of a step: its session and time. The key doubles as the index that finds
    # "the earliest step of a session at or after t" (one index probe).
    op.create_table(
        "steps",
        sa.Column("session_id", sa.Uuid, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_id", sa.Uuid, nullable=False),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "created_at", "step_id", name="pk_steps"),
    )
    op.create_table(
        "handoffs",
        sa.Column("handoff_id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.Column("session_id", sa.Uuid, nullable=False),
        # The claim event with the highest version seen, and the highest release version seen.
        sa.Column("claim_version", sa.BigInteger),
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
        sa.Column("release_version", sa.BigInteger),
        # Earliest step of the session at or after claimed_at (kept for the current claim).
        sa.Column("first_action_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        # docs/contract.md#the-escalation-metric: claimed unless a release has a higher version than the latest claim.
        sa.Column(
            "effective_claimed_at",
            sa.DateTime(timezone=True),
            sa.Computed(
                "CASE WHEN claim_version > COALESCE(release_version, 0) THEN claimed_at END", persisted=True
            ),
        ),
        sa.Column(
            "delta_s",
            sa.Float,
            sa.Computed(
                # NULL without a first action (GREATEST alone would turn that NULL into 0).
                "CASE WHEN first_action_at IS NOT NULL"
                " THEN GREATEST(0, EXTRACT(EPOCH FROM (first_action_at - claimed_at)))::double precision END",
                persisted=True,
            ),
        ),
    )
    op.create_index("ix_handoffs_session", "handoffs", ["session_id"])
    # The query reads one account's window of this index only (index-only when the visibility map allows).
    op.create_index(
        "ix_handoffs_account_claimed",
        "handoffs",
        ["account_id", "effective_claimed_at"],
        postgresql_include=["delta_s"],
        postgresql_where=sa.text("effective_claimed_at IS NOT NULL"),
    )
    op.create_table(
        "account_watermarks",
        sa.Column("account_id", sa.Uuid, primary_key=True),
        sa.Column("data_as_of", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_watermarks")
    op.drop_table("handoffs")
    op.drop_table("steps")
