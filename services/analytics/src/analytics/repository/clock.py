"""The business clock over the wall clock's statements: the same SQL over the stored business seconds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

# The stored wall deltas and their business twins (migration 0007): business_delta_s, business_human_delta_s, ...
_DELTA_COLUMN = re.compile(r"\b(delta_s|human_delta_s|ai_delta_s)\b")


@cache
def over_clock_columns(sql: str, clock: str) -> str:
    """The statement with its delta columns replaced by their business twins (clock=business), nothing added."""
    return sql if clock == "wall" else _DELTA_COLUMN.sub(r"business_\1", sql)


# The account's current schedule version (NULL without a schedule), and the aggregate every business answer reports
# with it: the acted-on handoffs among `alias`'s rows whose stored seconds were priced with an older version (none
# without a schedule). Each answer takes them from the same snapshot as its figures.
SCHEDULE_VERSION = "(SELECT version FROM business_hours WHERE account_id = $1)"


def n_pending(version: str, alias: str = "h") -> str:
    return f"count(*) FILTER (WHERE {alias}.delta_s IS NOT NULL AND {alias}.business_version < {version}) AS n_pending"


@cache
def for_clock(sql: str, clock: str) -> str:
    """A wall statement of account $1 over the window [$2, $3] as the business clock asks it: the same SQL over the
    business columns, with two more columns from the same snapshot: `schedule_version` (NULL without a schedule)
    and `n_pending` (the window's acted-on handoffs priced with an older version)."""
    if clock == "wall":
        return sql
    business = over_clock_columns(sql, clock)
    return f"""
    SELECT q.*, s.version AS schedule_version, (
        SELECT {n_pending("s.version", "p")} FROM handoffs AS p
        WHERE p.account_id = $1 AND p.effective_claimed_at IS NOT NULL
          AND p.effective_claimed_at >= $2 AND p.effective_claimed_at <= $3
    ) AS n_pending
    FROM ({business}) AS q
    CROSS JOIN (SELECT {SCHEDULE_VERSION} AS version) AS s
    """


@dataclass(frozen=True)
class ClockState:
    """What the business answer's snapshot said about the stored seconds (wall: version None, nothing pending)."""

    schedule_version: int | None = None
    n_pending: int = 0

    @staticmethod
    def of(row: Any, clock: str) -> ClockState:
        return ClockState(row["schedule_version"], row["n_pending"]) if clock == "business" else WALL




WALL = ClockState()  # the wall clock's: no schedule involved
