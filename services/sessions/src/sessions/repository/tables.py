"""The tables of the sessions service (the migrations build them; tests/test_schema_matches_metadata.py compares)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR

# The migrations build these tables; tests/test_schema_matches_metadata.py checks that they agree.
metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

# Full-text configuration: English stemming; title weighs A, description and tags B, node text C.
SEARCH_CONFIG = "english"
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '') || ' ' || coalesce(tags_text, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(node_text, '')), 'C')"
)

# The head of each tree: its latest version's searchable fields. Versions themselves live in tree_versions.
trees = sa.Table(
    "trees",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False),
    sa.Column("node_count", sa.Integer, nullable=False),
    sa.Column("tags_text", sa.Text, nullable=False),
    sa.Column("node_text", sa.Text, nullable=False),
    sa.Column("search", TSVECTOR, sa.Computed(SEARCH_VECTOR_SQL, persisted=True)),
    sa.Column("created_by", sa.Uuid, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("deleted_at", TS),
    sa.Index(
        "ix_trees_account_category_live", "account_id", "category", postgresql_where=sa.text("deleted_at IS NULL")
    ),
    sa.Index("ix_trees_search", "search", postgresql_using="gin"),
)

tree_versions = sa.Table(
    "tree_versions",
    metadata,
    sa.Column("tree_id", sa.Uuid, sa.ForeignKey("trees.id"), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False),
    sa.Column("root_node_id", sa.Text, nullable=False),
    sa.Column("nodes", JSONB, nullable=False),
    sa.Column("created_by", sa.Uuid, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("tree_id", sa.Uuid, nullable=False),
    sa.Column("tree_version", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("context", JSONB),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("current_node_id", sa.Text, nullable=False),
    sa.Column("started_by", sa.Uuid, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("completed_at", TS),
    sa.Column("completed_by", sa.Uuid),
    sa.Column("outcome", sa.Text),
    sa.Column("summary", sa.Text),
    sa.ForeignKeyConstraint(["tree_id", "tree_version"], ["tree_versions.tree_id", "tree_versions.version"]),
    sa.CheckConstraint("status IN ('active', 'completed')", name="ck_sessions_status"),
    sa.CheckConstraint("outcome IS NULL OR outcome IN ('resolved', 'unresolved')", name="ck_sessions_outcome"),
    sa.Index("ix_sessions_account_started", "account_id", sa.text("started_at DESC")),
    sa.Index("ix_sessions_account_user_started", "account_id", "started_by", sa.text("started_at DESC")),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # Ties on created_at (same microsecond) keep insertion order.
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column("session_id", sa.Uuid, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("node_id", sa.Text),
    sa.Column("option_label", sa.Text),
    sa.Column("next_node_id", sa.Text),
    sa.Column("actor_type", sa.Text, nullable=False),
    sa.Column("actor_id", sa.Uuid),
    sa.Column("recorded_by", sa.Uuid, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.CheckConstraint("kind IN ('answer', 'action', 'note', 'suggestion')", name="ck_steps_kind"),
    sa.CheckConstraint("actor_type IN ('human', 'ai')", name="ck_steps_actor_type"),
    sa.Index("ix_steps_session_created", "session_id", "created_at", "seq"),
)

# One row per handoff of a session, built from handoff events (see domain.HandoffView).
session_escalations = sa.Table(
    "session_escalations",
    metadata,
    sa.Column("handoff_id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("session_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("status_at", TS, nullable=False),
    sa.Column("claim_version", sa.BigInteger),
    sa.Column("claimed_by", sa.Uuid),
    sa.Column("claimed_at", TS),
    sa.Column("release_version", sa.BigInteger),
    sa.Index("ix_session_escalations_session", "account_id", "session_id"),
)
