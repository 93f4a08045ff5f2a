"""Adds stale claims: the per-account policy, the latest step seen per session, and the stale mark of a claim."""

from rfkit.frozen_ddl import Snapshot

revision = "0004"
down_revision = "0003"

SNAPSHOT = Snapshot(
    up=(
        """
        CREATE TABLE stale_policies (
            account_id uuid PRIMARY KEY,
            stale_after_seconds integer,
            auto_release boolean NOT NULL,
            updated_by uuid NOT NULL,
            updated_at timestamptz NOT NULL,
            CONSTRAINT ck_stale_policies_after CHECK (stale_after_seconds IS NULL OR stale_after_seconds >= 60)
        )
        """,
        """
        CREATE TABLE session_activity (
            session_id uuid PRIMARY KEY,
            account_id uuid NOT NULL,
            last_step_at timestamptz NOT NULL
        )
        """,
        "ALTER TABLE handoffs ADD COLUMN stale_since timestamptz",
        # What the detector scans every second: the claims not yet found stale.
        "CREATE INDEX ix_handoffs_unstale_claims ON handoffs (claimed_at)"
        " WHERE status = 'claimed' AND stale_since IS NULL",
        "ALTER TABLE handoff_history ALTER COLUMN actor_id DROP NOT NULL",
        "ALTER TABLE handoff_history DROP CONSTRAINT ck_handoff_history_action",
        "ALTER TABLE handoff_history ADD CONSTRAINT ck_handoff_history_action"
        " CHECK (action IN ('requested', 'claimed', 'released', 'resolved', 'stale'))",
    ),
    down=(
        "DELETE FROM handoff_history WHERE action = 'stale' OR actor_id IS NULL",
        "ALTER TABLE handoff_history DROP CONSTRAINT ck_handoff_history_action",
        "ALTER TABLE handoff_history ADD CONSTRAINT ck_handoff_history_action"
        " CHECK (action IN ('requested', 'claimed', 'released', 'resolved'))",
        "ALTER TABLE handoff_history ALTER COLUMN actor_id SET NOT NULL",
        "DROP INDEX ix_handoffs_unstale_claims",
        "ALTER TABLE handoffs DROP COLUMN stale_since",
        "DROP TABLE session_activity",
        "DROP TABLE stale_policies",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
