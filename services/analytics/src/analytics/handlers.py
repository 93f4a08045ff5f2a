"""Use cases: apply a batch of events to the read model; answer the escalation metric and its insights."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from analytics.domain import GroupStats, breakdown_order, csv_document, fold, local_days, window, zone
from analytics.repository import ActorStats, EscalationQueries, HandoffLine, InsightQueries
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
    # Joined to handoffs only when read: a session-started event after its claims and steps needs nothing more.
    await repo.insert_session_trees(trees=list(changes.trees.values()))
    await repo.raise_watermarks(watermarks=changes.watermarks)


@dataclass(frozen=True)
class GetEscalationMetric:
    """The section 5 answer of one account over the period ending at `now`."""

    account_id: UUID
    period: Period
    now: datetime


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


async def get_breakdown(query: GetBreakdown, *, db: Database) -> EscalationBreakdownRead:
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


def export_handoffs(query: ListHandoffs, *, db: Database) -> AsyncIterator[str]:
    """Every counted handoff (paging ignored) as CSV text, produced while it is sent."""
    start, end = window(query.period, query.now)
    lines = InsightQueries(db).all_handoffs(
        account_id=query.account_id, start=start, end=end, now=query.now, order=query.order
    )

    async def rows() -> AsyncIterator[tuple[object, ...]]:
        async for line in lines:
            # Not dataclasses.astuple: it deep-copies every value, a cost per row of a download of every row.
            yield tuple(getattr(line, name) for name in _LINE_FIELDS)

    return csv_document(DRILL_DOWN_FIELDS, rows())


@dataclass(frozen=True)
class GetSeries:
    """The statistics per calendar day in a time zone, and the histogram of the window's deltas."""

    account_id: UUID
    period: Period
    tz: str
    now: datetime


async def get_series(query: GetSeries, *, db: Database) -> EscalationSeriesRead:
    tz = zone(query.tz)  # first: an unknown zone is refused before any work
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
