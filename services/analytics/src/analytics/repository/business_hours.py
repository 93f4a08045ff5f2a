"""Business hours' SQL: the account's schedule (read, replaced) and the raw claim rows `clock=business` reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.repository.tables import business_hours
from rfkit.db import Database


@dataclass(frozen=True)
class StoredSchedule:
    """The schedule as an admin wrote it (week and holidays as JSON), with its version."""

    timezone: str
    week: dict[str, list[list[str]]]
    holidays: list[str]
    version: int
    updated_at: datetime


class BusinessHoursRepository:
    """One account's business hours over the unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, *, account_id: UUID) -> StoredSchedule | None:
        row = (
            await self._session.execute(sa.select(business_hours).where(business_hours.c.account_id == account_id))
        ).one_or_none()
        return None if row is None else _stored(row._mapping)

    async def replace(
        self, *, account_id: UUID, timezone: str, week: dict[str, list[list[str]]], holidays: list[str]
    ) -> StoredSchedule:
        """Write the schedule; its version is 1 the first time and one more with every later write."""
        stmt = insert(business_hours).values(
            account_id=account_id, timezone=timezone, week=week, holidays=holidays, version=1, updated_at=sa.func.now()
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[business_hours.c.account_id],
            set_={
                "timezone": stmt.excluded.timezone,
                "week": stmt.excluded.week,
                "holidays": stmt.excluded.holidays,
                "version": business_hours.c.version + 1,
                "updated_at": sa.func.now(),
            },
        ).returning(*business_hours.c)
        row = (await self._session.execute(upsert)).one()
        return _stored(row._mapping)


def _stored(row: Any) -> StoredSchedule:
    return StoredSchedule(
        timezone=row["timezone"],
        week=row["week"],
        holidays=row["holidays"],
        version=row["version"],
        updated_at=row["updated_at"],
    )


# Every counted handoff of account $1 with $2 <= claimed_at <= $3, its tree, and its instants as epoch seconds
# (what BusinessClock looks up), plus the labels of the trees they name (the title of the account's newest session
# on each tree, as the wall breakdown shows it) and the account's watermark. One statement: one snapshot.
_CLAIM_ROWS = """
    WITH c AS (
        SELECT h.handoff_id, h.session_id, t.tree_id, t.tree_category, h.priority, h.claimed_by,
               h.effective_claimed_at AS claimed_at, h.first_action_at,
               CASE WHEN h.first_action_at IS NULL THEN NULL
                    WHEN h.first_action_at = h.first_human_at THEN 'human'
                    WHEN h.first_action_at = h.first_ai_at THEN 'ai' END AS first_actor_type,
               EXTRACT(EPOCH FROM h.effective_claimed_at)::double precision AS claimed_s,
               EXTRACT(EPOCH FROM h.first_action_at)::double precision AS first_s,
               EXTRACT(EPOCH FROM h.first_human_at)::double precision AS human_s,
               EXTRACT(EPOCH FROM h.first_ai_at)::double precision AS ai_s
        FROM handoffs AS h
        LEFT JOIN session_trees AS t ON t.session_id = h.session_id AND t.account_id = h.account_id
        WHERE h.account_id = $1 AND h.effective_claimed_at IS NOT NULL
          AND h.effective_claimed_at >= $2 AND h.effective_claimed_at <= $3
    )
    SELECT (SELECT data_as_of FROM account_watermarks WHERE account_id = $1) AS data_as_of,
           ARRAY(SELECT ROW(c.*) FROM c) AS rows,
           ARRAY(
               SELECT ROW(l.tree_id, l.tree_title) FROM (
                   SELECT DISTINCT ON (n.tree_id) n.tree_id, n.tree_title FROM session_trees AS n
                   WHERE n.account_id = $1 AND n.tree_id IN (SELECT c.tree_id FROM c)
                   ORDER BY n.tree_id, n.started_at DESC, n.session_id DESC
               ) AS l
           ) AS labels
"""


@dataclass(frozen=True)
class ClaimRow:
    """One counted handoff as clock=business needs it: who, what, and when (epoch seconds for the clock)."""

    handoff_id: UUID
    session_id: UUID
    tree_id: UUID | None
    tree_category: str | None
    priority: str | None
    claimed_by: UUID | None
    claimed_at: datetime
    first_action_at: datetime | None
    first_actor_type: str | None
    claimed_s: float
    first_s: float | None
    human_s: float | None
    ai_s: float | None


@dataclass(frozen=True)
class ClaimRows:
    rows: list[ClaimRow]
    tree_labels: dict[UUID, str | None]
    data_as_of: datetime | None


class ClaimRowQueries:
    """The raw rows of a window (clock=business computes its statistics from them, at query time)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def counted(self, *, account_id: UUID, start: datetime, end: datetime) -> ClaimRows:
        row = await self._db.fetchrow(_CLAIM_ROWS, account_id, start, end)
        assert row is not None
        return ClaimRows(
            rows=[ClaimRow(*r) for r in row["rows"]],
            tree_labels={tree_id: title for tree_id, title in row["labels"]},
            data_as_of=row["data_as_of"],
        )
