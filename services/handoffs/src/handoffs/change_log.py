"""The handoff change log behind the live queue: its tables, the trigger that writes it, and every query on it.

Part of the repository room (the only SQL), kept in a module of its own so that the queue's tables and this log
change independently. No handler writes the log: a trigger on `handoffs` does, at commit, for every insert and
every update that moves `version` (each change of a handoff moves it), so whatever path changes a handoff, today's
or tomorrow's, is in the log.

Why a per-account counter row rather than a sequence: a reader that has served id n must never later find a
smaller id committed. Ids drawn from a sequence commit in any order (and filtering on transaction ids does not
close that gap: a transaction can take its xid before another but its sequence value after it). Here the id is
taken from the account's row in `handoff_change_heads` by the deferred trigger, right before commit, under that
row's lock: per account, ids are dense and commit in id order, so "everything after n" is complete the moment
n+1 is visible. The lock is held only from the trigger to the commit, so writers of one account queue for
microseconds, not for their whole transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# Its own metadata (the schema test adds it to the service's): this log's tables live beside the repository's.
change_log_metadata = sa.MetaData()

# The channel every replica LISTENs on; the payload is "<account id>:<change id>".
CHANNEL = "handoff_changes"

change_heads = sa.Table(
    "handoff_change_heads",
    change_log_metadata,
    sa.Column("account_id", sa.Uuid, primary_key=True),
    sa.Column("last_id", sa.BigInteger, nullable=False),
)

changes = sa.Table(
    "handoff_changes",
    change_log_metadata,
    sa.Column("account_id", sa.Uuid, primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("handoff_id", sa.Uuid, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # The purge deletes by age across accounts.
    sa.Index("ix_handoff_changes_at", "at"),
)

# The trigger-only objects, as the migration creates them (the schema test compares their definitions too).
RECORD_FUNCTION = f"""
CREATE FUNCTION handoff_changes_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    change_id bigint;
BEGIN
    INSERT INTO handoff_change_heads AS h (account_id, last_id) VALUES (NEW.account_id, 1)
    ON CONFLICT (account_id) DO UPDATE SET last_id = h.last_id + 1
    RETURNING h.last_id INTO change_id;
    INSERT INTO handoff_changes (account_id, id, handoff_id, version)
    VALUES (NEW.account_id, change_id, NEW.id, NEW.version);
    PERFORM pg_notify('{CHANNEL}', NEW.account_id::text || ':' || change_id::text);
    RETURN NULL;
END
$$
"""
# Deferred to commit: the id is taken as late as possible (see the module docstring), and the history row of the
# change is written by then.
INSERT_TRIGGER = """
CREATE CONSTRAINT TRIGGER handoff_changes_on_insert AFTER INSERT ON handoffs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION handoff_changes_record()
"""
UPDATE_TRIGGER = """
CREATE CONSTRAINT TRIGGER handoff_changes_on_update AFTER UPDATE ON handoffs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION handoff_changes_record()
"""
TRIGGER_DDL = (RECORD_FUNCTION, INSERT_TRIGGER, UPDATE_TRIGGER)

# A database built from the metadata (tests) gets the trigger too; it needs `handoffs`, which the repository's
# metadata creates first.
for _statement in TRIGGER_DDL:
    sa.event.listen(changes, "after_create", sa.DDL(_statement))


@dataclass(frozen=True)
class Change:
    """One entry of an account's change log: handoff `handoff_id` reached `version`."""

    id: int
    handoff_id: UUID
    version: int


class ChangeLogRepository:
    """Reads of the change log; each scoped by account except the purge (system-wide, named so)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def head(self, *, account_id: UUID) -> int:
        """The account's latest change id (0 before its first change)."""
        value = await self.session.scalar(
            sa.select(change_heads.c.last_id).where(change_heads.c.account_id == account_id)
        )
        return int(value or 0)

    async def after(self, *, account_id: UUID, after_id: int, limit: int) -> list[Change]:
        """The account's changes with an id above `after_id`, oldest first."""
        rows = await self.session.execute(
            sa.select(changes.c.id, changes.c.handoff_id, changes.c.version)
            .where(changes.c.account_id == account_id, changes.c.id > after_id)
            .order_by(changes.c.id)
            .limit(limit)
        )
        return [Change(id=int(r.id), handoff_id=r.handoff_id, version=int(r.version)) for r in rows]

    async def purge_system_wide(self, *, before: datetime) -> int:
        """Forget the changes of every account recorded before `before`; how many went."""
        result = await self.session.execute(sa.delete(changes).where(changes.c.at < before))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
