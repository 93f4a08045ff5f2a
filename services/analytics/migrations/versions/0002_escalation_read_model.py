"""Creates the escalation read model: step times per session, claim state and first action per handoff, watermarks."""

from rfkit.frozen_ddl import Snapshot

revision = "0002"
down_revision = "0001"

SNAPSHOT = Snapshot(
    up=(
        # Only what the metric needs of a step: its session and time. The key doubles as the index that finds
        # "the earliest step of a session at or after t" (one index probe).
        """
        CREATE TABLE steps (
            session_id uuid,
            created_at timestamptz,
            step_id uuid,
            account_id uuid NOT NULL,
            CONSTRAINT pk_steps PRIMARY KEY (session_id, created_at, step_id)
        )
        """,
        # claim_version: the claim event with the highest version seen; release_version: the highest release version
        # seen. first_action_at: the earliest step of the session at or after claimed_at (kept for the current claim).
        # effective_claimed_at: claimed unless a release has a higher version than the latest claim
        # (docs/contract.md#the-escalation-metric). delta_s is NULL without a first action (GREATEST alone would turn
        # that NULL into 0).
        """
        CREATE TABLE handoffs (
            handoff_id uuid PRIMARY KEY,
            account_id uuid NOT NULL,
            session_id uuid NOT NULL,
            claim_version bigint,
            claimed_at timestamptz,
            release_version bigint,
            first_action_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now(),
            effective_claimed_at timestamptz GENERATED ALWAYS AS (
                CASE WHEN claim_version > COALESCE(release_version, 0) THEN claimed_at END
            ) STORED,
            delta_s double precision GENERATED ALWAYS AS (
                CASE WHEN first_action_at IS NOT NULL
                THEN GREATEST(0, EXTRACT(EPOCH FROM (first_action_at - claimed_at)))::double precision END
            ) STORED
        )
        """,
        "CREATE INDEX ix_handoffs_session ON handoffs (session_id)",
        # The query reads one account's window of this index only (index-only when the visibility map allows).
        "CREATE INDEX ix_handoffs_account_claimed ON handoffs (account_id, effective_claimed_at) INCLUDE (delta_s)"
        " WHERE effective_claimed_at IS NOT NULL",
        "CREATE TABLE account_watermarks (account_id uuid PRIMARY KEY, data_as_of timestamptz NOT NULL)",
    ),
    down=("DROP TABLE account_watermarks, handoffs, steps",),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
