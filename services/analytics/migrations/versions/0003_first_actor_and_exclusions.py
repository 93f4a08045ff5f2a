"""Adds first action per actor type and request times: steps keep their actor_type, handoffs their first human/ai."""

from rfkit.frozen_ddl import Snapshot

revision = "0003"
down_revision = "0002"

SNAPSHOT = Snapshot(
    up=(
        # Steps stored before this revision have no actor_type (NULL): they still count as a first action of
        # any kind; `python -m analytics.rebuild` fills it in from the topics.
        "ALTER TABLE steps ADD COLUMN actor_type text",
        # first_human_at / first_ai_at: the earliest step of the session with that actor_type at or after claimed_at
        # (kept for the current claim). Each delta is NULL without such a step (GREATEST alone would turn it into 0).
        """
        ALTER TABLE handoffs
            ADD COLUMN requested_at timestamptz,
            ADD COLUMN first_human_at timestamptz,
            ADD COLUMN first_ai_at timestamptz,
            ADD COLUMN human_delta_s double precision GENERATED ALWAYS AS (
                CASE WHEN first_human_at IS NOT NULL
                THEN GREATEST(0, EXTRACT(EPOCH FROM (first_human_at - claimed_at)))::double precision END
            ) STORED,
            ADD COLUMN ai_delta_s double precision GENERATED ALWAYS AS (
                CASE WHEN first_ai_at IS NOT NULL
                THEN GREATEST(0, EXTRACT(EPOCH FROM (first_ai_at - claimed_at)))::double precision END
            ) STORED
        """,
        # The section 5 query reads one account's window of this index only: it now carries the per-actor deltas too.
        "DROP INDEX ix_handoffs_account_claimed",
        "CREATE INDEX ix_handoffs_account_claimed ON handoffs (account_id, effective_claimed_at)"
        " INCLUDE (delta_s, human_delta_s, ai_delta_s) WHERE effective_claimed_at IS NOT NULL",
        # The exclusions read the account's unclaimed handoffs requested in the window, and nothing else.
        "CREATE INDEX ix_handoffs_account_unclaimed_requested ON handoffs (account_id, requested_at)"
        " INCLUDE (claim_version) WHERE effective_claimed_at IS NULL AND requested_at IS NOT NULL",
    ),
    down=(
        "DROP INDEX ix_handoffs_account_unclaimed_requested",
        "DROP INDEX ix_handoffs_account_claimed",
        "CREATE INDEX ix_handoffs_account_claimed ON handoffs (account_id, effective_claimed_at) INCLUDE (delta_s)"
        " WHERE effective_claimed_at IS NOT NULL",
        "ALTER TABLE handoffs DROP COLUMN ai_delta_s, DROP COLUMN human_delta_s, DROP COLUMN first_ai_at,"
        " DROP COLUMN first_human_at, DROP COLUMN requested_at",
        "ALTER TABLE steps DROP COLUMN actor_type",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
