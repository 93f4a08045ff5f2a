"""The read model's tables: what the migrations build (tests/test_schema_matches_metadata.py checks they agree)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

# The read model's tables. The queries below are plain SQL (set-based, over unnest); these declarations are what
# the migrations build, and tests/test_schema_matches_metadata.py checks that they agree.
metadata = sa.MetaData()


def _delta_of(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NOT NULL"
        f" THEN GREATEST(0, EXTRACT(EPOCH FROM ({column} - claimed_at)))::double precision END"
    )


steps = sa.Table(
    "steps",
    metadata,
    sa.Column("session_id", sa.Uuid, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("step_id", sa.Uuid, nullable=False),
    sa.Column("account_id", sa.Uuid, nullable=False),
    # human | ai; NULL on steps stored before migration 0003 (a rebuild fills it in).
    sa.Column("actor_type", sa.Text),
    # The key doubles as the index that finds "the earliest step of a session at or after t".
    sa.PrimaryKeyConstraint("session_id", "created_at", "step_id", name="pk_steps"),
)

handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("handoff_id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("session_id", sa.Uuid, nullable=False),
    sa.Column("claim_version", sa.BigInteger),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("release_version", sa.BigInteger),
    sa.Column("first_action_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column(
        "effective_claimed_at",
        sa.DateTime(timezone=True),
        sa.Computed("CASE WHEN claim_version > COALESCE(release_version, 0) THEN claimed_at END", persisted=True),
    ),
    sa.Column("delta_s", sa.Float, sa.Computed(_delta_of("first_action_at"), persisted=True)),
    sa.Column("requested_at", sa.DateTime(timezone=True)),
    sa.Column("first_human_at", sa.DateTime(timezone=True)),
    sa.Column("first_ai_at", sa.DateTime(timezone=True)),
    sa.Column("human_delta_s", sa.Float, sa.Computed(_delta_of("first_human_at"), persisted=True)),
    sa.Column("ai_delta_s", sa.Float, sa.Computed(_delta_of("first_ai_at"), persisted=True)),
    sa.Column("priority", sa.Text),
    sa.Column("claimed_by", sa.Uuid),
    # Business seconds (0007): the deltas above in the account's open hours, priced by the recompute loop with
    # schedule `business_version` (0: not priced; the ingest resets it when a claim or a first action changes).
    sa.Column("business_version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("business_delta_s", sa.Float),
    sa.Column("business_human_delta_s", sa.Float),
    sa.Column("business_ai_delta_s", sa.Float),
    # The session's tree (migration 0008), copied from session_trees once both are known: the breakdowns by tree
    # and category read it without a join. NULL until the session-started event is applied.
    sa.Column("tree_id", sa.Uuid),
    sa.Column("tree_category", sa.Text),
    # A handoff with a current claim: its drill-down CSV cells but the last (waiting_seconds), in section 7's order,
    # each in the CSV's text form, joined by commas; NULL otherwise. Written by the trigger handoff_csv_cells
    # (migration 0009) whenever a statement sets a column they are made of: formatted once, not on every download.
    sa.Column("csv_cells", sa.Text),
    sa.Index("ix_handoffs_session", "session_id"),
    sa.Index(
        "ix_handoffs_account_claimed",
        "account_id",
        "effective_claimed_at",
        postgresql_include=[
            "delta_s",
            "human_delta_s",
            "ai_delta_s",
            "business_version",
            "business_delta_s",
            "business_human_delta_s",
            "business_ai_delta_s",
            "handoff_id",
        ],
        postgresql_where=sa.text("effective_claimed_at IS NOT NULL"),
    ),
    # The recompute loop's work list: acted-on claims priced with an older schedule version than the account's.
    sa.Index(
        "ix_handoffs_business_pending",
        "account_id",
        "business_version",
        postgresql_where=sa.text("effective_claimed_at IS NOT NULL AND first_action_at IS NOT NULL"),
    ),
    sa.Index(
        "ix_handoffs_account_unclaimed_requested",
        "account_id",
        "requested_at",
        postgresql_include=["claim_version"],
        postgresql_where=sa.text("effective_claimed_at IS NULL AND requested_at IS NOT NULL"),
    ),
)

account_watermarks = sa.Table(
    "account_watermarks",
    metadata,
    sa.Column("account_id", sa.Uuid, primary_key=True),
    sa.Column("data_as_of", sa.DateTime(timezone=True), nullable=False),
)

# The tree each session started on (session.started): copied onto the session's handoffs (handoffs.tree_id and
# tree_category), and the source of a tree's label (its newest session's title).
session_trees = sa.Table(
    "session_trees",
    metadata,
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("session_id", sa.Uuid, nullable=False),
    sa.Column("tree_id", sa.Uuid, nullable=False),
    sa.Column("tree_title", sa.Text),
    sa.Column("tree_category", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    # Account first: the insights read one account's sessions as one range of the key.
    sa.PrimaryKeyConstraint("account_id", "session_id", name="pk_session_trees"),
    sa.Index("ix_session_trees_account_tree", "account_id", "tree_id", "started_at", postgresql_include=["tree_title"]),
)

# The read model: what a rebuild empties and refills from the events.
READ_MODEL_TABLES = tuple(metadata.tables)

# An account's business hours (migration 0006): settings, not read model, so a rebuild keeps them. Read at query
# time by clock=business; `version` grows with every write and is named by each answer that used it.
business_hours = sa.Table(
    "business_hours",
    metadata,
    sa.Column("account_id", sa.Uuid, primary_key=True),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("week", JSONB, nullable=False),
    sa.Column("holidays", JSONB, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
