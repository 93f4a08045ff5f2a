"""The escalation metric's rules in plain Python: folding events into changes, windows, local days, orders, CSV."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import cast
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from rf_contracts import Event, HandoffClaimed, HandoffReleased, HandoffRequested, SessionStarted, StepCreated
from rf_contracts.api.analytics import PERIODS
from rfkit.errors import Conflict, Invalid, NotFound

log = logging.getLogger(__name__)

# The consumer's name in logs and metrics (and in the kit's ledger, which this idempotent consumer does not use).
CONSUMER_NAME = "analytics-escalations"


@dataclass(frozen=True)
class StepTime:
    """What the metric needs of a step: where, when and by whom (human or ai)."""

    account_id: UUID
    session_id: UUID
    step_id: UUID
    created_at: datetime
    actor_type: str


@dataclass(frozen=True)
class SessionTree:
    """The tree a session started on, as its session-started event names it."""

    account_id: UUID
    session_id: UUID
    tree_id: UUID
    tree_title: str | None
    tree_category: str | None
    started_at: datetime


def _storable(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL: dropping it keeps one odd title from failing every batch it is in.
    return text.replace("\x00", "") if text is not None else None


@dataclass
class HandoffChange:
    """One handoff's newest claim, newest release (versions decide, not arrival order) and request time in a batch."""

    handoff_id: UUID
    account_id: UUID
    session_id: UUID
    claim_version: int | None = None
    claimed_at: datetime | None = None
    release_version: int | None = None
    claimed_by: UUID | None = None
    # A handoff is requested once (its first version): any copy of that event carries the same time and priority.
    requested_at: datetime | None = None
    priority: str | None = None

    def claim(self, version: int, claimed_at: datetime, claimed_by: UUID) -> None:
        if self.claim_version is None or version > self.claim_version:
            self.claim_version, self.claimed_at, self.claimed_by = version, claimed_at, claimed_by

    def release(self, version: int) -> None:
        if self.release_version is None or version > self.release_version:
            self.release_version = version


@dataclass
class Changes:
    """A batch of events reduced to what the read model applies set-based in one transaction."""

    steps: list[StepTime] = field(default_factory=list)
    handoffs: dict[UUID, HandoffChange] = field(default_factory=dict)
    # A session starts once: any copy of its session-started event carries the same tree.
    trees: dict[UUID, SessionTree] = field(default_factory=dict)
    # Per account, the newest occurred_at among the batch's events: the account's data_as_of candidate.
    watermarks: dict[UUID, datetime] = field(default_factory=dict)

    def sessions(self) -> set[UUID]:
        """Sessions whose joins this batch touches (they are locked for the transaction)."""
        return {s.session_id for s in self.steps} | {h.session_id for h in self.handoffs.values()} | set(self.trees)


def fold(events: Iterable[Event]) -> Changes:
    """Reduce events of any type, in any order, to the read model's changes (the contract bounds what they hold)."""
    changes = Changes()
    for event in events:
        newest = changes.watermarks.get(event.account_id)
        if newest is None or event.occurred_at > newest:
            changes.watermarks[event.account_id] = event.occurred_at
        kind = type(event)
        if kind is StepCreated:
            step = cast(StepCreated, event)
            changes.steps.append(
                StepTime(step.account_id, step.session_id, step.step_id, step.created_at, step.actor_type)
            )
        elif kind is HandoffClaimed or kind is HandoffReleased or kind is HandoffRequested:
            handoff = cast(HandoffClaimed | HandoffReleased | HandoffRequested, event)
            change = changes.handoffs.get(handoff.handoff_id)
            if change is None:
                change = changes.handoffs[handoff.handoff_id] = HandoffChange(
                    handoff.handoff_id, handoff.account_id, handoff.session_id
                )
            if kind is HandoffClaimed:
                claim = cast(HandoffClaimed, handoff)
                change.claim(claim.version, claim.claimed_at, claim.claimed_by)
            elif kind is HandoffReleased:
                change.release(handoff.version)
            else:
                request = cast(HandoffRequested, handoff)
                change.requested_at, change.priority = request.requested_at, request.priority
        elif kind is SessionStarted:
            started = cast(SessionStarted, event)
            changes.trees[started.session_id] = SessionTree(
                started.account_id,
                started.session_id,
                started.tree_id,
                _storable(started.tree_title),
                _storable(started.tree_category),
                started.started_at,
            )
        # handoff.resolved changes no claim (resolving keeps it): only the watermark.
    return changes


def window(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[now - period, now] for a period the API accepts."""
    return now - PERIODS[period], now


class UnknownTimeZone(Invalid, code="unknown_time_zone"):
    """A `tz` that is no IANA time zone name."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name, or UnknownTimeZone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not even a zone-like name ("", "../x", "a\x00")
        raise UnknownTimeZone(f"unknown time zone {name!r}: give an IANA name such as Europe/Paris") from None


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[date, datetime]]:
    """Every calendar day in tz from the local date of start to that of end, each with the instant it begins.

    A midnight that a daylight saving change skips begins at the first instant after it (fold=0 maps it there).
    """
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    days = []
    day = first
    while day <= last:
        days.append((day, datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)))
        day += timedelta(days=1)
    return days


@dataclass(frozen=True)
class GroupStats:
    """The section 5 statistics of one group of counted handoffs (a breakdown key, a day)."""

    key: str | None
    label: str | None
    n_claimed: int
    n_with_action: int
    avg_s: float | None
    median_s: float | None
    p95_s: float | None


def breakdown_order(groups: Iterable[GroupStats]) -> list[GroupStats]:
    """Section 7: n_handoffs_claimed descending, then key ascending (by code point; an unknown key last)."""
    return sorted(groups, key=lambda g: (-g.n_claimed, g.key is None, g.key or ""))


def csv_document(
    header: Sequence[str], rows: AsyncIterator[Sequence[object]], *, chunk_chars: int = 64 * 1024
) -> AsyncIterator[str]:
    """RFC 4180 text (CRLF, quoted only where needed, quotes doubled), empty cells for None, in chunks of about
    `chunk_chars` (one chunk per row would cost one write to the client per row)."""

    async def chunks() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(header)
        async for row in rows:
            writer.writerow(["" if v is None else _cell(v) for v in row])
            if buffer.tell() >= chunk_chars:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return chunks()


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# ---- Business hours (clock=business): statistics computed in Python from the window's rows -------------------


class BusinessHoursNotSet(
    NotFound,
    code="business_hours_not_set",
    detail="no business hours are set for this account: an admin sets them with PUT",
):
    """GET /analytics/business-hours of an account that has none."""


class BusinessHoursRequired(
    Conflict,
    code="business_hours_not_set",
    detail="clock=business needs the account's business hours: an admin sets them first",
):
    """`clock=business` asked of an account without business hours (a state the admin can change: 409)."""


def percentile_cont(ordered: Sequence[float] | npt.NDArray[np.float64], q: float) -> float:
    """PostgreSQL's percentile_cont over sorted values (or values sorted at the two closest ranks at least): linear
    interpolation between the closest ranks."""
    row = q * (len(ordered) - 1)
    lo, hi = math.floor(row), math.ceil(row)
    if lo == hi:
        return float(ordered[lo])
    return float(ordered[lo] + (row - lo) * (ordered[hi] - ordered[lo]))


@dataclass(frozen=True)
class DeltaStats:
    """n, avg, median and p95 of some deltas (the handoffs with an action, overall or of one first actor), as
    PostgreSQL's count, avg and percentile_cont give them (None without any)."""

    n_with_action: int
    avg_s: float | None
    median_s: float | None
    p95_s: float | None


def delta_stats(deltas: Iterable[float] | npt.NDArray[np.float64]) -> DeltaStats:
    """PostgreSQL's count, avg and percentile_cont(0.5 and 0.95) of the deltas, to the last bit: avg is its running
    sum in the values' order over n (float8 avg's Sx / N), and the percentiles are selected instead of sorted (only
    the values at the closest ranks are put in their sorted places: O(n) where a sort is O(n log n))."""
    values = deltas if isinstance(deltas, np.ndarray) else np.fromiter(deltas, dtype=np.float64)
    n = len(values)
    if n == 0:
        return DeltaStats(0, None, None, None)
    rows = (0.5 * (n - 1), 0.95 * (n - 1))
    placed = np.partition(values, sorted({k for row in rows for k in (math.floor(row), math.ceil(row))}))
    running_sum = float(np.add.accumulate(values)[-1])  # one by one, as avg() adds (numpy's sum adds pairwise)
    return DeltaStats(n, running_sum / n, percentile_cont(placed, 0.5), percentile_cont(placed, 0.95))


def group_stats(key: str | None, label: str | None, n_claimed: int, deltas: Iterable[float]) -> GroupStats:
    s = delta_stats(deltas)
    return GroupStats(key, label, n_claimed, s.n_with_action, s.avg_s, s.median_s, s.p95_s)
