"""The handoff change log behind the live queue: its tables and every query on it (a trigger writes it).

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

The trigger and its function exist only as SQL, in migration 0006 (services/handoffs/migrations/versions): no code
creates or reads them, so this module keeps no copy (the schema test checks they are there, with CHANNEL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# Its own metadata (the schema test adds it to the service's): this log's tables live beside the repository's.
change_log_metadata = sa.MetaData()

# The channel every replica LISTENs on, to which the trigger NOTIFYs "<account id>:<change id>".
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
