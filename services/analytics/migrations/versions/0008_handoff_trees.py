"""Copies each session's tree id and category onto its handoffs, so breakdowns by tree and category need no join."""

from rfkit.frozen_ddl import Snapshot

revision = "0008"
down_revision = "0007"

# Copied from session_trees when both are known: a session-started event fills in the handoffs already stored for
# its session, and a handoff stored after it picks its tree up on insert (repository/escalations.py). The backfill
# below does the same for the handoffs already stored.
SNAPSHOT = Snapshot(
    up=(
        # NULL until the session's session-started event is applied (as the join gave before).
        "ALTER TABLE handoffs ADD COLUMN tree_id uuid, ADD COLUMN tree_category text",
        """
        UPDATE handoffs AS h SET tree_id = t.tree_id, tree_category = t.tree_category
        FROM session_trees AS t
        WHERE t.account_id = h.account_id AND t.session_id = h.session_id AND h.tree_id IS NULL
        """,
    ),
    down=("ALTER TABLE handoffs DROP COLUMN tree_category, DROP COLUMN tree_id",),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
