"""Stored business seconds: the recompute loop's work list and writes, and the wall queries turned to clock=business.

A `clock=business` answer is the wall clock's own statement over the stored business columns (`for_clock`), plus,
from the same snapshot, the account's schedule version and how many of the window's acted-on handoffs are not yet
priced with it (`n_pending`): when that is not 0 the caller prices the window at query time instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.repository.business_hours import StoredSchedule
from analytics.repository.clock import SCHEDULE_VERSION, ClockState, for_clock, n_pending
from analytics.repository.insights import HandoffLine
from rfkit.db import Database

# The counted handoffs without a first action, which the drill-down prices at query time (their time runs to now).
_OPEN_CLAIMS = """
    SELECT ARRAY(
        SELECT ROW(h.handoff_id, h.session_id, t.tree_id, h.priority, h.claimed_by, h.effective_claimed_at)
        FROM handoffs AS h
        LEFT JOIN session_trees AS t ON t.account_id = h.account_id AND t.session_id = h.session_id
        WHERE h.account_id = $1 AND h.effective_claimed_at IS NOT NULL
          AND h.effective_claimed_at >= $2 AND h.effective_claimed_at <= $3 AND h.delta_s IS NULL
    ) AS rows
"""
# The drill-down `slowest` with the business clock, from one snapshot: the schedule version and the pending count
# (as `for_clock` adds them), the total, the acted-on handoffs with the largest stored business deltas ($4 of them,
# in section 7's field order, trees joined after the cut), and every open claim as two plain arrays (id, claim
# instant): their business waiting time runs to now, so the caller prices them and merges. Its own statement
# rather than the wall page's: that one orders the open claims by wall waiting time and would have to return all
# of them as whole rows.
_COUNTED = """h.account_id = $1 AND h.effective_claimed_at IS NOT NULL
          AND h.effective_claimed_at >= $2 AND h.effective_claimed_at <= $3"""
_SLOWEST = f"""
    SELECT s.version AS schedule_version, w.*, ARRAY(
        SELECT ROW(c.handoff_id, c.session_id, t.tree_id, c.priority, c.claimed_by, c.effective_claimed_at,
                   c.first_action_at,
                   CASE WHEN c.first_action_at = c.first_human_at THEN 'human'
                        WHEN c.first_action_at = c.first_ai_at THEN 'ai' END,
                   c.business_delta_s, NULL::double precision)
        FROM (
            SELECT h.handoff_id FROM handoffs AS h WHERE {_COUNTED} AND h.business_delta_s IS NOT NULL
            ORDER BY h.business_delta_s DESC, h.handoff_id LIMIT $4
        ) AS top
        JOIN handoffs AS c ON c.handoff_id = top.handoff_id
        LEFT JOIN session_trees AS t ON t.account_id = $1 AND t.session_id = c.session_id
        ORDER BY c.business_delta_s DESC, c.handoff_id
    ) AS acted
    FROM (SELECT {SCHEDULE_VERSION} AS version) AS s
    CROSS JOIN LATERAL (
        SELECT count(*) AS total,
               {n_pending("s.version")},
               COALESCE(array_agg(h.handoff_id) FILTER (WHERE h.delta_s IS NULL), '{{}}') AS open_ids,
               COALESCE(array_agg(EXTRACT(EPOCH FROM h.effective_claimed_at)::double precision)
                        FILTER (WHERE h.delta_s IS NULL), '{{}}') AS open_claimed_s
        FROM handoffs AS h WHERE {_COUNTED}
    ) AS w
"""
_OPEN_LINES = """
    SELECT ARRAY(
        SELECT ROW(h.handoff_id, h.session_id, t.tree_id, h.priority, h.claimed_by, h.effective_claimed_at)
        FROM handoffs AS h
        LEFT JOIN session_trees AS t ON t.account_id = h.account_id AND t.session_id = h.session_id
        WHERE h.account_id = $1 AND h.handoff_id = ANY($2::uuid[])
    ) AS rows
"""


@dataclass(frozen=True)
class SlowestCandidates:
    """What the business `slowest` page is cut from (see _SLOWEST)."""

    clock_state: ClockState
    total: int
    acted: list[HandoffLine]
    open_ids: list[UUID]
    open_claimed_s: list[float]


_PENDING_IN_WINDOW = f"SELECT n_pending, schedule_version FROM ({for_clock('SELECT 1', 'business')}) AS x"


class BusinessSecondsQueries:
    """Reads of the stored business seconds for one account's window (`Database.fetchrow`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_claims(self, *, account_id: UUID, start: datetime, end: datetime) -> list[HandoffLine]:
        """The window's counted handoffs without a first action (delta and waiting left for the caller)."""
        row = await self._db.fetchrow(_OPEN_CLAIMS, account_id, start, end)
        assert row is not None
        return [
            HandoffLine(handoff, session, tree, priority, by, claimed_at, None, None, None, None)
            for handoff, session, tree, priority, by, claimed_at in row["rows"]
        ]

    async def slowest_candidates(
        self, *, account_id: UUID, start: datetime, end: datetime, acted: int
    ) -> SlowestCandidates:
        """The `acted` acted-on handoffs with the largest stored business deltas, and every open claim's instant."""
        row = await self._db.fetchrow(_SLOWEST, account_id, start, end, acted)
        assert row is not None
        return SlowestCandidates(
            ClockState(row["schedule_version"], row["n_pending"]),
            row["total"],
            [HandoffLine(*line) for line in row["acted"]],
            list(row["open_ids"]),
            list(row["open_claimed_s"]),
        )

    async def open_lines(self, *, account_id: UUID, handoff_ids: list[UUID]) -> list[HandoffLine]:
        """These open claims of the account as drill-down lines (delta and waiting left for the caller)."""
        row = await self._db.fetchrow(_OPEN_LINES, account_id, handoff_ids)
        assert row is not None
        return [
            HandoffLine(handoff, session, tree, priority, by, claimed_at, None, None, None, None)
            for handoff, session, tree, priority, by, claimed_at in row["rows"]
        ]

    async def state(self, *, account_id: UUID, start: datetime, end: datetime) -> ClockState:
        row = await self._db.fetchrow(_PENDING_IN_WINDOW, account_id, start, end)
        assert row is not None
        return ClockState(row["schedule_version"], row["n_pending"])


@dataclass(frozen=True)
class ScheduledAccount:
    account_id: UUID
    schedule: StoredSchedule


@dataclass(frozen=True)
class PendingClaim:
    """An acted-on handoff to price: its claim and first actions as epoch seconds."""

    handoff_id: UUID
    claimed_s: float
    first_s: float
    human_s: float | None
    ai_s: float | None


# System-wide: the accounts with at least one acted-on handoff priced with an older version than their schedule's
# (one probe of ix_handoffs_business_pending per account with a schedule).
_ACCOUNTS_WITH_WORK = sa.text(
    """
    SELECT b.account_id, b.timezone, b.week, b.holidays, b.version, b.updated_at FROM business_hours AS b
    WHERE EXISTS (
        SELECT 1 FROM handoffs AS h
        WHERE h.account_id = b.account_id AND h.business_version < b.version
          AND h.effective_claimed_at IS NOT NULL AND h.first_action_at IS NOT NULL
    )
    """
)

# Locked to commit and skipped by any other replica's pass: each handoff is priced by one of them; an ingest that
# moves its claim or first action waits for the commit, then resets business_version (priced again).
_PENDING_BATCH = sa.text(
    """
    SELECT handoff_id,
           EXTRACT(EPOCH FROM claimed_at)::double precision AS claimed_s,
           EXTRACT(EPOCH FROM first_action_at)::double precision AS first_s,
           EXTRACT(EPOCH FROM first_human_at)::double precision AS human_s,
           EXTRACT(EPOCH FROM first_ai_at)::double precision AS ai_s
    FROM handoffs
    WHERE account_id = :account_id AND business_version < :version
      AND effective_claimed_at IS NOT NULL AND first_action_at IS NOT NULL
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)

_STORE = sa.text(
    """
    UPDATE handoffs AS h SET business_version = :version, business_delta_s = u.d,
                             business_human_delta_s = u.hd, business_ai_delta_s = u.ad
    FROM unnest(CAST(:ids AS uuid[]), CAST(:d AS double precision[]), CAST(:hd AS double precision[]),
                CAST(:ad AS double precision[])) AS u(handoff_id, d, hd, ad)
    WHERE h.account_id = :account_id AND h.handoff_id = u.handoff_id
    """
)


class BusinessSecondsRepository:
    """The recompute loop's writes over the unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def accounts_with_work_all_accounts(self) -> list[ScheduledAccount]:
        """System-wide: every account with a schedule and acted-on handoffs not yet priced with it."""
        rows = (await self._session.execute(_ACCOUNTS_WITH_WORK)).mappings().all()
        return [
            ScheduledAccount(
                r["account_id"],
                StoredSchedule(r["timezone"], r["week"], r["holidays"], r["version"], r["updated_at"]),
            )
            for r in rows
        ]

    async def lock_pending(self, *, account_id: UUID, version: int, limit: int) -> list[PendingClaim]:
        """Up to `limit` of the account's handoffs to price for `version`, locked (others' locked ones skipped)."""
        rows = await self._session.execute(
            _PENDING_BATCH, {"account_id": account_id, "version": version, "limit": limit}
        )
        return [PendingClaim(*r) for r in rows.all()]

    async def store(
        self,
        *,
        account_id: UUID,
        version: int,
        handoff_ids: list[UUID],
        deltas: list[float | None],
        human: list[float | None],
        ai: list[float | None],
    ) -> None:
        if handoff_ids:
            await self._session.execute(
                _STORE,
                {"account_id": account_id, "version": version, "ids": handoff_ids, "d": deltas, "hd": human,
                 "ad": ai},
            )
