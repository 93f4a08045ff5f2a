"""Stores business seconds per handoff with the schedule version that priced them (0: not priced yet)."""

from rfkit.frozen_ddl import Snapshot

revision = "0007"
down_revision = "0006"

# The recompute loop fills them. The claimed index carries them (and the handoff's id, which the business drill-down
# orders and merges by), so a business answer stays index-only.
SNAPSHOT = Snapshot(
    up=(
        """ALTER TABLE handoffs
        ADD COLUMN business_version bigint NOT NULL DEFAULT 0,
        ADD COLUMN business_delta_s double precision,
        ADD COLUMN business_human_delta_s double precision,
        ADD COLUMN business_ai_delta_s double precision""",
        "DROP INDEX ix_handoffs_account_claimed",
        """CREATE INDEX ix_handoffs_account_claimed ON handoffs (account_id, effective_claimed_at)
        INCLUDE (delta_s, human_delta_s, ai_delta_s,
                 business_version, business_delta_s, business_human_delta_s, business_ai_delta_s, handoff_id)
        WHERE effective_claimed_at IS NOT NULL""",
        """CREATE INDEX ix_handoffs_business_pending ON handoffs (account_id, business_version)
        WHERE effective_claimed_at IS NOT NULL AND first_action_at IS NOT NULL""",
    ),
    down=(
        "DROP INDEX ix_handoffs_business_pending",
        "DROP INDEX ix_handoffs_account_claimed",
        """CREATE INDEX ix_handoffs_account_claimed ON handoffs (account_id, effective_claimed_at)
        INCLUDE (delta_s, human_delta_s, ai_delta_s) WHERE effective_claimed_at IS NOT NULL""",
        """ALTER TABLE handoffs DROP COLUMN business_version, DROP COLUMN business_delta_s,
        DROP COLUMN business_human_delta_s, DROP COLUMN business_ai_delta_s""",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
