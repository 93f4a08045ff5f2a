"""Use cases: apply a batch of events to the read model; answer the escalation metric and its insights."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from analytics.business_hours import BusinessClock, parse_schedule
from analytics.domain import (
    BusinessHoursNotSet,
    BusinessHoursRequired,
    DeltaStats,
    GroupStats,
    breakdown_order,
    csv_document,
    delta_stats,
    fold,
    group_stats,
    local_days,
    window,
    zone,
)
from analytics.repository import (
    ActorStats,
    ClaimRowQueries,
    EscalationQueries,
    HandoffLine,
    InsightQueries,
    StoredSchedule,
)
from analytics.uow import AnalyticsUnitOfWork
from rf_contracts import Event
from rf_contracts.api.analytics import (
    DRILL_DOWN_FIELDS,
    HISTOGRAM_BOUNDS_SECONDS,
    METRIC_DEFINITION,
    BreakdownBy,
    BreakdownGroup,
    ByFirstActor,
    DrillDownOrder,
    EscalationBreakdownRead,
    EscalationHandoff,
    EscalationHandoffPage,
    EscalationMetricRead,
    EscalationSeriesRead,
    Excluded,
    FirstActorStats,
    Histogram,
    Period,
    SeriesDay,
)
from rf_contracts.api.business_hours import BusinessHoursRead, Clock, Week
from rfkit.db import Database


async def apply_events(uow: AnalyticsUnitOfWork, events: list[Event]) -> None:
    """Fold new events (any order, any mix of topics) into the read model, set-based, in the kit's transaction."""
    changes = fold(events)
    repo = uow.escalations
    # Taken first and held to commit: a step and a claim of one session applied by two replicas at once
    # would otherwise each miss the other's uncommitted row and lose their join.
    await repo.lock_sessions(session_ids=changes.sessions())
    await repo.insert_steps(steps=changes.steps)
    # After the steps: a claim's first-action probe sees this batch's steps too.
    await repo.upsert_handoffs(changes=list(changes.handoffs.values()))
    await repo.advance_first_actions(steps=changes.steps)
    # Also copies each tree onto the session's handoffs stored so far (those stored later pick it up on insert).
    await repo.insert_session_trees(trees=list(changes.trees.values()))
    await repo.raise_watermarks(watermarks=changes.watermarks)


@dataclass(frozen=True)
class GetEscalationMetric:
    """The section 5 answer of one account over the period ending at `now`."""

    account_id: UUID
    period: Period
    now: datetime
    clock: Clock = "wall"


def _actor(stats: ActorStats) -> FirstActorStats:
    return FirstActorStats(
        n_handoffs_with_action=stats.n_with_action,
        avg_seconds=stats.avg_s,
        median_seconds=stats.median_s,
        p95_seconds=stats.p95_s,
    )


async def get_escalation_metric(query: GetEscalationMetric, *, db: Database) -> EscalationMetricRead:
    """The metric of docs/contract.md#the-escalation-metric for one account and period, read from the read model."""
    start, end = window(query.period, query.now)
    stats = await EscalationQueries(db).escalation_stats(account_id=query.account_id, start=start, end=end)
    if query.clock == "business":
        return await _business_metric(query, stats.n_unclaimed, stats.n_released, db=db)
    return EscalationMetricRead(
        period=query.period,
        window_start=start,
        window_end=end,
        n_handoffs_claimed=stats.n_claimed,
        n_handoffs_with_action=stats.n_with_action,
        avg_seconds=stats.avg_s,
        median_seconds=stats.median_s,
        p95_seconds=stats.p95_s,
        by_first_actor=ByFirstActor(human=_actor(stats.by_actor["human"]), ai=_actor(stats.by_actor["ai"])),
        excluded=Excluded(unclaimed=stats.n_unclaimed, released=stats.n_released),
        metric_definition=METRIC_DEFINITION,
        data_as_of=stats.data_as_of,
    )


# ---- Section 7: breakdown, drill-down, series ----------------------------------------------------------------


@dataclass(frozen=True)
class GetBreakdown:
    """The section 5 statistics per tree, category, priority or claimer."""

    account_id: UUID
    period: Period
    by: BreakdownBy
    now: datetime
    clock: Clock = "wall"


async def get_breakdown(query: GetBreakdown, *, db: Database) -> EscalationBreakdownRead:
    if query.clock == "business":
        return await _business_breakdown(query, db=db)
    start, end = window(query.period, query.now)
    found = await InsightQueries(db).breakdown(account_id=query.account_id, start=start, end=end, by=query.by)
    return EscalationBreakdownRead(
        period=query.period,
        window_start=start,
        window_end=end,
        by=query.by,
        groups=[
            BreakdownGroup(
                key=g.key,
                label=g.label,
                n_handoffs_claimed=g.n_claimed,
                n_handoffs_with_action=g.n_with_action,
                avg_seconds=g.avg_s,
                median_seconds=g.median_s,
                p95_seconds=g.p95_s,
            )
            for g in breakdown_order(found.groups)
        ],
        data_as_of=found.data_as_of,
    )


@dataclass(frozen=True)
class ListHandoffs:
    """The counted handoffs, slowest or newest first, one page (or every row)."""

    account_id: UUID
    period: Period
    order: DrillDownOrder
    now: datetime
    limit: int = 50
    offset: int = 0
    clock: Clock = "wall"


_LINE_FIELDS = tuple(f.name for f in fields(HandoffLine))


def _item(line: HandoffLine) -> EscalationHandoff:
    return EscalationHandoff(
        handoff_id=line.handoff_id,
        session_id=line.session_id,
        tree_id=line.tree_id,
        priority=line.priority,
        claimed_by=line.claimed_by,
        claimed_at=line.claimed_at,
        first_action_at=line.first_action_at,
        first_actor_type=line.first_actor_type,  # type: ignore[arg-type]  # the query yields only human|ai|NULL
        delta_seconds=line.delta_s,
        waiting_seconds=line.waiting_s,
    )


async def list_handoffs(query: ListHandoffs, *, db: Database) -> EscalationHandoffPage:
    if query.clock == "business":
        return await _business_page(query, db=db)
    start, end = window(query.period, query.now)
    found = await InsightQueries(db).handoff_page(
        account_id=query.account_id,
        start=start,
        end=end,
        now=query.now,
        order=query.order,
        limit=query.limit,
        offset=query.offset,
    )
    return EscalationHandoffPage(
        items=[_item(line) for line in found.items], total=found.total, limit=query.limit, offset=query.offset
    )


async def export_handoffs(query: ListHandoffs, *, db: Database) -> AsyncIterator[str] | AsyncIterator[bytes]:
    """Every counted handoff (paging ignored) as CSV, produced while it is sent. Awaited before the answer
    starts, so that a refusal (clock=business without a schedule) is still an error answer."""
    if query.clock == "business":
        return csv_document(DRILL_DOWN_FIELDS, _rows_of((await _business_lines(query, db=db)).lines))
    start, end = window(query.period, query.now)
    return InsightQueries(db).handoffs_csv(
        account_id=query.account_id, start=start, end=end, now=query.now, order=query.order
    )


async def _rows_of(lines: Sequence[HandoffLine]) -> AsyncIterator[tuple[object, ...]]:
    for line in lines:
        yield tuple(getattr(line, name) for name in _LINE_FIELDS)


@dataclass(frozen=True)
class GetSeries:
    """The statistics per calendar day in a time zone, and the histogram of the window's deltas."""

    account_id: UUID
    period: Period
    tz: str
    now: datetime
    clock: Clock = "wall"


async def get_series(query: GetSeries, *, db: Database) -> EscalationSeriesRead:
    tz = zone(query.tz)  # first: an unknown zone is refused before any work
    if query.clock == "business":
        return await _business_series(query, db=db)
    start, end = window(query.period, query.now)
    days = local_days(start, end, tz)
    found = await InsightQueries(db).series(
        account_id=query.account_id,
        start=start,
        end=end,
        day_starts=[begins for _, begins in days],
        bounds=[float(b) for b in HISTOGRAM_BOUNDS_SECONDS],
    )
    empty = GroupStats(None, None, 0, 0, None, None, None)
    return EscalationSeriesRead(
        period=query.period,
        tz=query.tz,
        days=[
            SeriesDay(
                date=day,
                n_handoffs_claimed=s.n_claimed,
                n_handoffs_with_action=s.n_with_action,
                avg_seconds=s.avg_s,
                median_seconds=s.median_s,
                p95_seconds=s.p95_s,
            )
            for i, (day, _) in enumerate(days)
            for s in [found.days.get(i, empty)]
        ],
        histogram=Histogram(
            bounds_seconds=list(HISTOGRAM_BOUNDS_SECONDS),
            counts=[found.histogram.get(i, 0) for i in range(len(HISTOGRAM_BOUNDS_SECONDS))],
        ),
        data_as_of=found.data_as_of,
    )


# ---- Business hours: the schedule, and clock=business computed at query time ----------------------------------


@dataclass(frozen=True)
class SetBusinessHours:
    """Replace an account's business hours (validated first: an invalid schedule is never stored)."""

    account_id: UUID
    timezone: str
    week: dict[str, list[list[str]]]
    holidays: list[str]


def _schedule_read(stored: StoredSchedule) -> BusinessHoursRead:
    return BusinessHoursRead(
        timezone=stored.timezone,
        week=Week.model_validate(stored.week),
        holidays=stored.holidays,
        version=stored.version,
        updated_at=stored.updated_at,
    )


async def set_business_hours(cmd: SetBusinessHours, *, db: Database) -> BusinessHoursRead:
    parse_schedule(cmd.timezone, cmd.week, cmd.holidays)  # InvalidSchedule (422) names the first problem
    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
        stored = await uow.business_hours.replace(
            account_id=cmd.account_id, timezone=cmd.timezone, week=cmd.week, holidays=cmd.holidays
        )
    return _schedule_read(stored)


async def get_business_hours(*, account_id: UUID, db: Database) -> BusinessHoursRead:
    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
        stored = await uow.business_hours.get(account_id=account_id)
    if stored is None:
        raise BusinessHoursNotSet("no business hours are set for this account: an admin sets them with PUT")
    return _schedule_read(stored)


# A step recorded after the request's instant (a producer's clock ahead) still has its open seconds counted, up to
# this far ahead: the clock is built over [window_start, max(now, latest first action)], and a bound keeps one
# absurd timestamp from making that span (and the clock's build) unbounded.
FUTURE_HORIZON = timedelta(days=7)


@dataclass(frozen=True)
class _Business:
    """A window's counted handoffs (column by column) with their business deltas, and the schedule version."""

    n: int
    columns: dict[str, list[Any]]
    deltas: list[float | None]  # per handoff: open seconds from the claim to its first action
    clock: BusinessClock
    now_s: float
    version: int
    tree_labels: dict[UUID, str | None]
    data_as_of: datetime | None

    def since_claim(self, column: str) -> list[float | None]:
        """Per handoff: open seconds from its claim to that column's instant (None where it has none)."""
        at = self.clock.at_epoch
        return [
            None if t is None else max(0.0, at(t) - at(c))
            for c, t in zip(self.columns["claimed_s"], self.columns[column], strict=True)
        ]


async def _business(
    account_id: UUID, period: str, now: datetime, *, db: Database, columns: Sequence[str] = (), labels: bool = False
) -> _Business:
    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
        stored = await uow.business_hours.get(account_id=account_id)
    if stored is None:
        raise BusinessHoursRequired("clock=business needs the account's business hours: an admin sets them first")
    schedule = parse_schedule(stored.timezone, stored.week, stored.holidays)
    start, end = window(period, now)
    wanted = ("claimed_s", "first_s", *(c for c in columns if c not in ("claimed_s", "first_s")))
    found = await ClaimRowQueries(db).counted(
        account_id=account_id, start=start, end=end, columns=wanted, tree_labels=labels
    )
    latest = max((t for t in found.columns["first_s"] if t is not None), default=end.timestamp())
    clock_end = min(max(end, datetime.fromtimestamp(latest, UTC)), end + FUTURE_HORIZON)
    b = _Business(
        found.n,
        found.columns,
        [],
        BusinessClock(schedule, start, clock_end),
        end.timestamp(),
        stored.version,
        found.tree_labels,
        found.data_as_of,
    )
    b.deltas.extend(b.since_claim("first_s"))
    return b


def _with_action(deltas: Sequence[float | None]) -> list[float]:
    return [d for d in deltas if d is not None]


def _first_actor(stats: DeltaStats) -> FirstActorStats:
    return FirstActorStats(
        n_handoffs_with_action=stats.n, avg_seconds=stats.avg_s, median_seconds=stats.median_s, p95_seconds=stats.p95_s
    )


async def _business_metric(
    query: GetEscalationMetric, n_unclaimed: int, n_released: int, *, db: Database
) -> EscalationMetricRead:
    b = await _business(query.account_id, query.period, query.now, db=db, columns=("human_s", "ai_s"))
    start, end = window(query.period, query.now)
    overall = delta_stats(_with_action(b.deltas))
    human = delta_stats(_with_action(b.since_claim("human_s")))
    ai = delta_stats(_with_action(b.since_claim("ai_s")))
    return EscalationMetricRead(
        period=query.period,
        window_start=start,
        window_end=end,
        n_handoffs_claimed=b.n,
        n_handoffs_with_action=overall.n,
        avg_seconds=overall.avg_s,
        median_seconds=overall.median_s,
        p95_seconds=overall.p95_s,
        by_first_actor=ByFirstActor(human=_first_actor(human), ai=_first_actor(ai)),
        excluded=Excluded(unclaimed=n_unclaimed, released=n_released),
        metric_definition=METRIC_DEFINITION,
        data_as_of=b.data_as_of,
        clock="business",
        schedule_version=b.version,
    )


# by -> the column that keys the group
_GROUP_COLUMN = {"tree": "tree_id", "category": "tree_category", "priority": "priority", "claimer": "claimed_by"}


async def _business_breakdown(query: GetBreakdown, *, db: Database) -> EscalationBreakdownRead:
    column = _GROUP_COLUMN[query.by]
    b = await _business(query.account_id, query.period, query.now, db=db, columns=(column,), labels=query.by == "tree")
    start, end = window(query.period, query.now)
    members: dict[Any, list[float | None]] = {}
    for key, delta in zip(b.columns[column], b.deltas, strict=True):
        members.setdefault(key, []).append(delta)
    groups = []
    for key, deltas in members.items():
        text = None if key is None else str(key)
        label = b.tree_labels.get(key) if query.by == "tree" and key is not None else text
        groups.append(group_stats(text, label, len(deltas), _with_action(deltas)))
    return EscalationBreakdownRead(
        period=query.period,
        window_start=start,
        window_end=end,
        by=query.by,
        groups=[
            BreakdownGroup(
                key=g.key,
                label=g.label,
                n_handoffs_claimed=g.n_claimed,
                n_handoffs_with_action=g.n_with_action,
                avg_seconds=g.avg_s,
                median_seconds=g.median_s,
                p95_seconds=g.p95_s,
            )
            for g in breakdown_order(groups)
        ],
        data_as_of=b.data_as_of,
        clock="business",
        schedule_version=b.version,
    )


@dataclass(frozen=True)
class _BusinessLines:
    lines: list[HandoffLine]
    version: int


_LINE_COLUMNS = (
    "handoff_id",
    "session_id",
    "tree_id",
    "priority",
    "claimed_by",
    "claimed_at",
    "first_action_at",
    "first_actor_type",
)


async def _business_lines(query: ListHandoffs, *, db: Database) -> _BusinessLines:
    """Every counted handoff with business delta and waiting time, in the drill-down's order."""
    b = await _business(query.account_id, query.period, query.now, db=db, columns=_LINE_COLUMNS)
    at = b.clock.at_epoch
    now_open = at(b.now_s)
    lines = [
        HandoffLine(
            **{c: b.columns[c][i] for c in _LINE_COLUMNS},
            delta_s=delta,
            waiting_s=max(0.0, now_open - at(b.columns["claimed_s"][i])) if delta is None else None,
        )
        for i, delta in enumerate(b.deltas)
    ]
    lines.sort(key=lambda line: line.handoff_id)  # ties: handoff_id ascending (the sorts below are stable)
    if query.order == "newest":
        lines.sort(key=lambda line: line.claimed_at, reverse=True)
    else:
        lines.sort(key=lambda line: line.delta_s if line.delta_s is not None else line.waiting_s or 0.0, reverse=True)
    return _BusinessLines(lines, b.version)


async def _business_page(query: ListHandoffs, *, db: Database) -> EscalationHandoffPage:
    found = await _business_lines(query, db=db)
    page = found.lines[query.offset : query.offset + query.limit]
    return EscalationHandoffPage(
        items=[_item(line) for line in page],
        total=len(found.lines),
        limit=query.limit,
        offset=query.offset,
        clock="business",
        schedule_version=found.version,
    )


async def _business_series(query: GetSeries, *, db: Database) -> EscalationSeriesRead:
    tz = zone(query.tz)
    b = await _business(query.account_id, query.period, query.now, db=db)
    start, end = window(query.period, query.now)
    days = local_days(start, end, tz)
    day_starts = [begins.timestamp() for _, begins in days]
    per_day: dict[int, list[float | None]] = {}
    counts = [0] * len(HISTOGRAM_BOUNDS_SECONDS)
    for claimed_s, delta in zip(b.columns["claimed_s"], b.deltas, strict=True):
        per_day.setdefault(bisect_right(day_starts, claimed_s) - 1, []).append(delta)
        if delta is not None:
            counts[bisect_right(HISTOGRAM_BOUNDS_SECONDS, delta) - 1] += 1
    return EscalationSeriesRead(
        period=query.period,
        tz=query.tz,
        days=[
            SeriesDay(
                date=day,
                n_handoffs_claimed=s.n_claimed,
                n_handoffs_with_action=s.n_with_action,
                avg_seconds=s.avg_s,
                median_seconds=s.median_s,
                p95_seconds=s.p95_s,
            )
            for i, (day, _) in enumerate(days)
            for ds in [per_day.get(i, [])]
            for s in [group_stats(None, None, len(ds), _with_action(ds))]
        ],
        histogram=Histogram(bounds_seconds=list(HISTOGRAM_BOUNDS_SECONDS), counts=counts),
        data_as_of=b.data_as_of,
        clock="business",
        schedule_version=b.version,
    )
