"""Decision trees (versioned, full-text searchable), sessions, steps and escalation views.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# Keep equal to sessions.repository.SEARCH_VECTOR_SQL (a generated column cannot be changed in place).
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '') || ' ' || coalesce(tags_text, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(node_text, '')), 'C')"
)


def upgrade() -> None:
    op.create_table(
        "trees",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
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
    )
    op.create_index(
        "ix_trees_account_category_live",
        "trees",
        ["account_id", "category"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("ix_trees_search", "trees", ["search"], postgresql_using="gin")

    op.create_table(
        "tree_versions",
        sa.Column("tree_id", sa.Uuid, sa.ForeignKey("trees.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
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

    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.Column("tree_id", sa.Uuid, nullable=False),
        sa.Column("tree_version", sa.Integer, nullable=False),
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
    )
    op.create_index("ix_sessions_account_started", "sessions", ["account_id", sa.text("started_at DESC")])
    op.create_index(
        "ix_sessions_account_user_started", "sessions", ["account_id", "started_by", sa.text("started_at DESC")]
    )

    op.create_table(
        "steps",
        sa.Column("id", sa.Uuid, primary_key=True),
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
    )
    op.create_index("ix_steps_session_created", "steps", ["session_id", "created_at", "seq"])

    op.create_table(
        "session_escalations",
        sa.Column("handoff_id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Uuid, nullable=False),
        sa.Column("session_id", sa.Uuid, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status_at", TS, nullable=False),
        sa.Column("claim_version", sa.Integer),
        sa.Column("claimed_by", sa.Uuid),
        sa.Column("claimed_at", TS),
        sa.Column("release_version", sa.Integer),
    )
    op.create_index("ix_session_escalations_session", "session_escalations", ["account_id", "session_id"])


def downgrade() -> None:
    op.drop_table("session_escalations")
    op.drop_table("steps")
    op.drop_table("sessions")
    op.drop_table("tree_versions")
    op.drop_table("trees")
