"""Creates the live queue's handoff change log: per-account ids, the trigger that writes them, and its NOTIFY."""

from rfkit.frozen_ddl import Snapshot

revision = "0006"
down_revision = "0005"

SNAPSHOT = Snapshot(
    up=(
        # A row per account hands out that account's change ids under its row lock, at commit, so ids are dense and
        # commit in order (handoffs.change_log says why that matters).
        "CREATE TABLE handoff_change_heads (account_id uuid PRIMARY KEY, last_id bigint NOT NULL)",
        """
        CREATE TABLE handoff_changes (
            account_id uuid,
            id bigint,
            handoff_id uuid NOT NULL,
            version bigint NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account_id, id)
        )
        """,
        "CREATE INDEX ix_handoff_changes_at ON handoff_changes (at)",
        """
CREATE FUNCTION handoff_changes_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    change_id bigint;
BEGIN
    INSERT INTO handoff_change_heads AS h (account_id, last_id) VALUES (NEW.account_id, 1)
    ON CONFLICT (account_id) DO UPDATE SET last_id = h.last_id + 1
    RETURNING h.last_id INTO change_id;
    INSERT INTO handoff_changes (account_id, id, handoff_id, version)
    VALUES (NEW.account_id, change_id, NEW.id, NEW.version);
    PERFORM pg_notify('handoff_changes', NEW.account_id::text || ':' || change_id::text);
    RETURN NULL;
END
$$
""",
        # Deferred to commit: the id is taken as late as possible (handoffs.change_log says why), and the history row of
        # the change is written by then.
        """
CREATE CONSTRAINT TRIGGER handoff_changes_on_insert AFTER INSERT ON handoffs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION handoff_changes_record()
""",
        """
CREATE CONSTRAINT TRIGGER handoff_changes_on_update AFTER UPDATE ON handoffs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION handoff_changes_record()
""",
    ),
    down=(
        "DROP TRIGGER handoff_changes_on_update ON handoffs",
        "DROP TRIGGER handoff_changes_on_insert ON handoffs",
        "DROP FUNCTION handoff_changes_record()",
        "DROP TABLE handoff_changes, handoff_change_heads",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
