"""Use cases: apply a batch of events to the read model, and answer the escalation metric."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from analytics.domain import fold, window
from analytics.repository import ActorStats, EscalationQueries
from analytics.uow import AnalyticsUnitOfWork
from rf_contracts import Event
from rf_contracts.api.analytics import (
    METRIC_DEFINITION,
    ByFirstActor,
    EscalationMetricRead,
    Excluded,
    FirstActorStats,
    Period,
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
