"""The handoff change log of the live queue: per-account ids, the trigger that writes them, and its NOTIFY.

Plain DDL, frozen here (handoffs.change_log holds the same statements for the metadata; the schema test compares
both). A row in handoff_change_heads per account hands out that account's change ids under its row lock, at
commit, so ids are dense and commit in order (handoffs.change_log says why that matters).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoff_change_heads",
        sa.Column("account_id", sa.Uuid, primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "handoff_changes",
        sa.Column("account_id", sa.Uuid, primary_key=True),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("handoff_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_handoff_changes_at", "handoff_changes", ["at"])
    op.execute(
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
"""
    )
    op.execute(
        """
CREATE CONSTRAINT TRIGGER handoff_changes_on_insert AFTER INSERT ON handoffs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION handoff_changes_record()
"""
    )
    op.execute(
        """
CREATE CONSTRAINT TRIGGER handoff_changes_on_update AFTER UPDATE ON handoffs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION handoff_changes_record()
"""
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER handoff_changes_on_update ON handoffs")
    op.execute("DROP TRIGGER handoff_changes_on_insert ON handoffs")
    op.execute("DROP FUNCTION handoff_changes_record()")
    op.drop_table("handoff_changes")
    op.drop_table("handoff_change_heads")
