"""Section 7's read side: breakdown, drill-down (a page, or every row streamed) and daily series."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from analytics.domain import GroupStats
from analytics.repository.clock import WALL, ClockState, for_clock, over_clock_columns
from rf_contracts.api.analytics import DRILL_DOWN_FIELDS
from rfkit.db import Database

# The handoffs that count (section 5): a current claim with $2 <= claimed_at <= $3, of account $1.
_COUNTED = """
    h.account_id = $1 AND h.effective_claimed_at IS NOT NULL
    AND h.effective_claimed_at >= $2 AND h.effective_claimed_at <= $3
"""
_WATERMARK = "(SELECT data_as_of FROM account_watermarks WHERE account_id = $1)"

# by -> the group's key, a column of the handoff's row (its session's tree is copied there: no join; NULL until the
# session-started event is applied). The label of a tree is looked up once per group (see _breakdown_sql).
_GROUPINGS: dict[str, str] = {
    "tree": "h.tree_id",
    "category": "h.tree_category",
    "priority": "h.priority",
    "claimer": "h.claimed_by",
}
# A tree's label is its title as the newest session of the account started on it saw it (a tree keeps its id
# across versions, and a new version may retitle it): one probe of ix_session_trees_account_tree per group.
_TREE_LABEL = """(
    SELECT n.tree_title FROM session_trees AS n
    WHERE n.account_id = $1 AND n.tree_id = g.key
    ORDER BY n.started_at DESC, n.session_id DESC LIMIT 1
)"""


def _breakdown_sql(by: str) -> str:
    key = _GROUPINGS[by]
    label = _TREE_LABEL if by == "tree" else "NULL::text"
    return f"""
    SELECT {_WATERMARK} AS data_as_of, ARRAY(
        SELECT ROW(g.key::text, {label}, g.n, g.n_with, g.avg_s, g.p[1], g.p[2]) FROM (
            SELECT {key} AS key, count(*) AS n, count(h.delta_s) AS n_with, avg(h.delta_s) AS avg_s,
                   percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY h.delta_s) AS p
            FROM handoffs AS h
            WHERE {_COUNTED}
            GROUP BY 1
        ) AS g
    ) AS groups
    """


_BREAKDOWN_SQL = {by: _breakdown_sql(by) for by in _GROUPINGS}

# An open claim's waiting time to $4 (now), NULL once acted on.
_WAITING_S = """CASE WHEN h.first_action_at IS NULL
    THEN EXTRACT(EPOCH FROM (CAST($4 AS timestamptz) - h.effective_claimed_at))::double precision END"""
# One row per counted handoff, in section 7's field order. The first actor is the kind whose first step is the first
# action (human when a human and an ai step share that instant).
_ITEMS = f"""
    SELECT h.handoff_id, h.session_id, h.tree_id, h.priority, h.claimed_by, h.effective_claimed_at AS claimed_at,
           h.first_action_at,
           CASE WHEN h.first_action_at IS NULL THEN NULL
                WHEN h.first_action_at = h.first_human_at THEN 'human'
                WHEN h.first_action_at = h.first_ai_at THEN 'ai' END AS first_actor_type,
           h.delta_s,
           {_WAITING_S} AS waiting_s
    FROM handoffs AS h
    WHERE {_COUNTED}
"""
_ORDERS = {
    "slowest": "COALESCE(c.delta_s, c.waiting_s) DESC, c.handoff_id",
    "newest": "c.claimed_at DESC, c.handoff_id",
}
_PAGE_SQL = {
    order: f"""
    SELECT (SELECT count(*) FROM handoffs AS h WHERE {_COUNTED}) AS total, ARRAY(
        SELECT ROW(c.*) FROM ({_ITEMS}) AS c ORDER BY {sort} LIMIT $5 OFFSET $6
    ) AS items
    """
    for order, sort in _ORDERS.items()
}


# The same rows, every one, as values: the business clock's CSV prices its open claims in Python before writing.
ALL_ITEMS_SQL = {order: f"SELECT c.* FROM ({_ITEMS}) AS c ORDER BY {sort}" for order, sort in _ORDERS.items()}


def _float_text(value: str) -> str:
    """A float as Python's str() writes it: PostgreSQL's float8 text is the same shortest round-trip form, but for
    whole numbers ("20", Python "20.0"). The forms part again only from 1e15, past any delta timestamps allow."""
    return f"CASE WHEN {value} = trunc({value}) THEN trunc({value})::bigint::text || '.0' ELSE {value}::text END"


# The drill-down's CSV rows: the same rows and order, every one of them, each line the handoff's stored cells
# (handoffs.csv_cells, formatted when the row was written) and its waiting time to now, in the same text forms as
# the JSON answer's values (instants in isoformat, floats as Python writes them), NULL an empty cell. No cell can
# hold a comma, a quote, a backslash or a line break (ids, instants, numbers, enums), so none needs quoting: the
# lines are CSV as they are, and PostgreSQL's text COPY passes them on unchanged. The header row is the field names.
CSV_HEADER = ",".join(DRILL_DOWN_FIELDS).encode() + b"\r\n"
CSV_SQL = {
    order: f"""
    SELECT c.csv_cells || ',' || COALESCE({_float_text("c.waiting_s")}, '') FROM (
        SELECT h.csv_cells, h.handoff_id, h.delta_s, h.effective_claimed_at AS claimed_at, {_WAITING_S} AS waiting_s
        FROM handoffs AS h
        WHERE {_COUNTED}
    ) AS c ORDER BY {sort}
    """
    for order, sort in _ORDERS.items()
}

# $4: the instants the local days begin (width_bucket: i for days[i-1] <= claimed_at < days[i]); $5: the
# histogram's bounds (i for bounds[i-1] <= delta < bounds[i], the last bucket open-ended).
_SERIES_SQL = f"""
    SELECT {_WATERMARK} AS data_as_of, ARRAY(
        SELECT ROW(d.b, d.n, d.n_with, d.avg_s, d.p[1], d.p[2]) FROM (
            SELECT width_bucket(h.effective_claimed_at, CAST($4 AS timestamptz[])) AS b, count(*) AS n,
                   count(h.delta_s) AS n_with, avg(h.delta_s) AS avg_s,
                   percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY h.delta_s) AS p
            FROM handoffs AS h
            WHERE {_COUNTED}
            GROUP BY 1
        ) AS d
    ) AS days, ARRAY(
        SELECT ROW(x.b, x.n) FROM (
            SELECT width_bucket(h.delta_s, CAST($5 AS double precision[])) AS b, count(*) AS n
            FROM handoffs AS h
            WHERE {_COUNTED} AND h.delta_s IS NOT NULL
            GROUP BY 1
        ) AS x
    ) AS histogram
"""


@dataclass(frozen=True)
class Breakdown:
    groups: list[GroupStats]
    data_as_of: datetime | None
    clock_state: ClockState = WALL


@dataclass(frozen=True)
class HandoffLine:
    """One counted handoff as the drill-down shows it (fields in section 7's order)."""

    handoff_id: UUID
    session_id: UUID
    tree_id: UUID | None
    priority: str | None
    claimed_by: UUID | None
    claimed_at: datetime
    first_action_at: datetime | None
    first_actor_type: str | None
    delta_s: float | None
    waiting_s: float | None


@dataclass(frozen=True)
class HandoffLines:
    items: list[HandoffLine]
    total: int
    clock_state: ClockState = WALL


@dataclass(frozen=True)
class Series:
    """Statistics per local day (by index into the days asked for) and histogram counts per bucket index."""

    days: dict[int, GroupStats]
    histogram: dict[int, int]
    data_as_of: datetime | None
    clock_state: ClockState = WALL


class InsightQueries:
    """Section 7's answers for one account: each a single statement (its own snapshot) on `Database.fetchrow`,
    except the CSV, which streams from PostgreSQL's COPY."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def breakdown(
        self, *, account_id: UUID, start: datetime, end: datetime, by: str, clock: str = "wall"
    ) -> Breakdown:
        row = await self._db.fetchrow(for_clock(_BREAKDOWN_SQL[by], clock), account_id, start, end)
        assert row is not None
        groups = [
            GroupStats(k, label if by == "tree" else k, n, nw, a, m, p) for k, label, n, nw, a, m, p in row["groups"]
        ]
        return Breakdown(groups, row["data_as_of"], ClockState.of(row, clock))

    async def handoff_page(
        self,
        *,
        account_id: UUID,
        start: datetime,
        end: datetime,
        now: datetime,
        order: str,
        limit: int,
        offset: int,
        clock: str = "wall",
    ) -> HandoffLines:
        """clock=business: stored business deltas; waiting_s (and so the open claims' place in `slowest`) stays
        wall time, for the caller to price."""
        row = await self._db.fetchrow(for_clock(_PAGE_SQL[order], clock), account_id, start, end, now, limit, offset)
        assert row is not None
        return HandoffLines([HandoffLine(*item) for item in row["items"]], row["total"], ClockState.of(row, clock))

    async def all_handoffs(
        self, *, account_id: UUID, start: datetime, end: datetime, now: datetime, order: str, clock: str = "wall"
    ) -> AsyncIterator[HandoffLine]:
        """Every counted handoff in that order, read in chunks from one snapshot while the caller consumes them
        (clock=business: as `handoff_page`; the caller checks first that the stored seconds are current)."""
        sql = over_clock_columns(ALL_ITEMS_SQL[order], clock)
        async for row in self._db.stream(sql, account_id, start, end, now):
            yield HandoffLine(*row)

    async def handoffs_csv(
        self, *, account_id: UUID, start: datetime, end: datetime, now: datetime, order: str
    ) -> AsyncIterator[bytes]:
        """Every counted handoff in that order as RFC 4180 CSV with a header row, its lines written by PostgreSQL
        (one statement: one snapshot) and passed on chunk by chunk while the caller consumes them."""
        yield CSV_HEADER
        async for chunk in self._db.copy_out(CSV_SQL[order], account_id, start, end, now, format="text"):
            # COPY ends lines with LF; RFC 4180 wants CRLF. No cell holds a line break, so every LF ends a row.
            yield chunk.replace(b"\n", b"\r\n")

    async def series(
        self,
        *,
        account_id: UUID,
        start: datetime,
        end: datetime,
        day_starts: list[datetime],
        bounds: list[float],
        clock: str = "wall",
    ) -> Series:
        row = await self._db.fetchrow(for_clock(_SERIES_SQL, clock), account_id, start, end, day_starts, bounds)
        assert row is not None
        days = {b - 1: GroupStats(None, None, n, nw, a, m, p) for b, n, nw, a, m, p in row["days"]}
        return Series(days, {b - 1: n for b, n in row["histogram"]}, row["data_as_of"], ClockState.of(row, clock))
