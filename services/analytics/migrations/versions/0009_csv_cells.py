"""Stores each claimed handoff's drill-down CSV cells (but waiting_seconds) already formatted, kept by a trigger."""

from rfkit.frozen_ddl import Snapshot

revision = "0009"
down_revision = "0008"

# The download formatted ten cells per row on every request, its two instants above all; now they are formatted
# when a row's cells change. A trigger rather than a generated column: PostgreSQL recomputes every generated column
# on every UPDATE, and the business-seconds recompute (which changes none of these cells) took four times as long;
# `UPDATE OF` fires only when a statement sets a column the cells are made of.
#
# The text forms are Python's, as the CSV always wrote them: ids and enums as they are, an instant as isoformat() of
# the UTC time (microseconds only when not zero), a float as str() (PostgreSQL's shortest round-trip float text, but
# "20.0" where it writes "20"; the function fixes extra_float_digits, so the writer's setting cannot change it).
# Nothing else read depends on a setting (the instants are converted to UTC; to_char's fields here are not
# localized).
SNAPSHOT = Snapshot(
    up=(
        "ALTER TABLE handoffs ADD COLUMN csv_cells text",
        """CREATE FUNCTION handoff_csv_cells() RETURNS trigger LANGUAGE plpgsql SET extra_float_digits = 1 AS $$
    DECLARE
        iso CONSTANT text := 'YYYY-MM-DD"T"HH24:MI:SS.US+00:00';
        delta double precision;
    BEGIN
        IF NOT COALESCE(NEW.claim_version > COALESCE(NEW.release_version, 0), false) THEN
            NEW.csv_cells := NULL;  -- no current claim: not counted, no row in the download
            RETURN NEW;
        END IF;
        IF NEW.first_action_at IS NOT NULL THEN
            delta := GREATEST(0, EXTRACT(EPOCH FROM (NEW.first_action_at - NEW.claimed_at)))::double precision;
        END IF;
        NEW.csv_cells := concat_ws(',',
            NEW.handoff_id::text,
            NEW.session_id::text,
            COALESCE(NEW.tree_id::text, ''),
            COALESCE(NEW.priority, ''),
            COALESCE(NEW.claimed_by::text, ''),
            COALESCE(replace(to_char(NEW.claimed_at AT TIME ZONE 'UTC', iso), '.000000+', '+'), ''),
            COALESCE(replace(to_char(NEW.first_action_at AT TIME ZONE 'UTC', iso), '.000000+', '+'), ''),
            CASE WHEN NEW.first_action_at = NEW.first_human_at THEN 'human'
                 WHEN NEW.first_action_at = NEW.first_ai_at THEN 'ai' ELSE '' END,
            CASE WHEN delta IS NULL THEN ''
                 WHEN delta = trunc(delta) THEN trunc(delta)::bigint::text || '.0' ELSE delta::text END
        );
        RETURN NEW;
    END
    $$""",
        """CREATE TRIGGER handoff_csv_cells BEFORE INSERT OR UPDATE OF
        handoff_id, session_id, tree_id, priority, claimed_by, claim_version, claimed_at, release_version,
        first_action_at, first_human_at, first_ai_at
    ON handoffs FOR EACH ROW EXECUTE FUNCTION handoff_csv_cells()""",
        # The rows already stored (setting a column the trigger watches fires it).
        "UPDATE handoffs SET claim_version = claim_version WHERE claim_version > COALESCE(release_version, 0)",
    ),
    down=(
        "DROP TRIGGER handoff_csv_cells ON handoffs",
        "DROP FUNCTION handoff_csv_cells()",
        "ALTER TABLE handoffs DROP COLUMN csv_cells",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
