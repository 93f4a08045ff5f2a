"""Adds escalation insights: the tree of each session, and each handoff's priority and current claimer."""

from rfkit.frozen_ddl import Snapshot

revision = "0004"
down_revision = "0003"

SNAPSHOT = Snapshot(
    up=(
        # One row per started session (from session.started): the insights join handoffs to it by session at query
        # time, so a claim or step that arrives before its session-started event needs no later fix-up. Keyed by
        # account first: a query reads one account's sessions as one range of the key (not a scan of every account's).
        """
        CREATE TABLE session_trees (
            account_id uuid NOT NULL,
            session_id uuid NOT NULL,
            tree_id uuid NOT NULL,
            tree_title text,
            tree_category text,
            started_at timestamptz NOT NULL,
            CONSTRAINT pk_session_trees PRIMARY KEY (account_id, session_id)
        )
        """,
        # A tree's label in the breakdown: the title of the account's newest session on it, one probe per tree.
        "CREATE INDEX ix_session_trees_account_tree ON session_trees (account_id, tree_id, started_at)"
        " INCLUDE (tree_title)",
        # priority comes with the request (version 1); claimed_by travels with claimed_at (the newest claim version).
        # Handoffs stored before this revision have neither until `python -m analytics.rebuild`.
        "ALTER TABLE handoffs ADD COLUMN priority text, ADD COLUMN claimed_by uuid",
    ),
    down=(
        "ALTER TABLE handoffs DROP COLUMN claimed_by, DROP COLUMN priority",
        "DROP TABLE session_trees",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
