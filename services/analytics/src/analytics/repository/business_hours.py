"""Business hours' SQL: the account's schedule (read, replaced) and the raw claim rows `clock=business` reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
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


# What clock=business can ask of each counted handoff; a request reads only the columns it needs (decoding a row's
# uuids and timestamps costs more than PostgreSQL takes to find it: the metric and the series read floats alone).
CLAIM_COLUMNS: dict[str, str] = {
    "handoff_id": "h.handoff_id",
    "session_id": "h.session_id",
    "tree_id": "h.tree_id",
    "tree_category": "h.tree_category",
    "priority": "h.priority",
    "claimed_by": "h.claimed_by",
    "claimed_at": "h.effective_claimed_at",
    "first_action_at": "h.first_action_at",
    # The kind whose first step is the first action (human when a human and an ai step share that instant).
    "first_actor_type": """CASE WHEN h.first_action_at IS NULL THEN NULL
                               WHEN h.first_action_at = h.first_human_at THEN 'human'
                               WHEN h.first_action_at = h.first_ai_at THEN 'ai' END""",
    # The instants BusinessClock looks up, as epoch seconds.
    "claimed_s": "EXTRACT(EPOCH FROM h.effective_claimed_at)::double precision",
    "first_s": "EXTRACT(EPOCH FROM h.first_action_at)::double precision",
    "human_s": "EXTRACT(EPOCH FROM h.first_human_at)::double precision",
    "ai_s": "EXTRACT(EPOCH FROM h.first_ai_at)::double precision",
}


@cache
def _claim_columns_sql(columns: tuple[str, ...], labels: bool) -> str:
    """The counted handoffs of account $1 with $2 <= claimed_at <= $3, one array per column (in one order: one
    aggregate pass), plus the watermark and, with `labels`, the title of the account's newest session on each of
    their trees (as the wall breakdown labels a tree). One statement: one snapshot."""
    assert not labels or "tree_id" in columns, "tree labels are looked up by the rows' tree_id"
    selected = ", ".join(f"{CLAIM_COLUMNS[c]} AS {c}" for c in columns)
    label_sql = (
        """(
        SELECT ARRAY[array_agg(l.tree_id::text), array_agg(l.tree_title)] FROM (
            SELECT DISTINCT ON (n.tree_id) n.tree_id, n.tree_title FROM session_trees AS n
            WHERE n.account_id = $1 AND n.tree_id IN (SELECT c.tree_id FROM c WHERE c.tree_id IS NOT NULL)
            ORDER BY n.tree_id, n.started_at DESC, n.session_id DESC
        ) AS l
    )"""
        if labels
        else "NULL::text[]"
    )
    aggregates = ", ".join(f"array_agg(c.{c}) AS {c}" for c in columns)
    return f"""
    WITH c AS (
        SELECT {selected}
        FROM handoffs AS h
        WHERE h.account_id = $1 AND h.effective_claimed_at IS NOT NULL
          AND h.effective_claimed_at >= $2 AND h.effective_claimed_at <= $3
    )
    SELECT count(*) AS n, {aggregates},
           (SELECT data_as_of FROM account_watermarks WHERE account_id = $1) AS data_as_of,
           {label_sql} AS labels
    FROM c
    """


@dataclass(frozen=True)
class ClaimColumns:
    """The window's counted handoffs column by column (`columns[name][i]` of handoff i), for clock=business."""

    n: int
    columns: dict[str, list[Any]]
    tree_labels: dict[UUID, str | None]
    data_as_of: datetime | None


class ClaimRowQueries:
    """The raw rows of a window (clock=business computes its statistics from them, at query time)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def counted(
        self, *, account_id: UUID, start: datetime, end: datetime, columns: Sequence[str], tree_labels: bool = False
    ) -> ClaimColumns:
        row = await self._db.fetchrow(_claim_columns_sql(tuple(columns), tree_labels), account_id, start, end)
        assert row is not None  # an aggregate without GROUP BY always gives one row
        n = row["n"]
        labels: dict[UUID, str | None] = {}
        # No counted handoff: PostgreSQL builds ARRAY[NULL, NULL] of two null arrays as an empty array.
        if row["labels"] and row["labels"][0] is not None:
            ids, titles = row["labels"]
            labels = {UUID(i): title for i, title in zip(ids, titles, strict=True)}
        return ClaimColumns(
            n=n,
            columns={c: (row[c] if n else []) for c in columns},
            tree_labels=labels,
            data_as_of=row["data_as_of"],
        )
