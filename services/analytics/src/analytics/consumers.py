"""Subscribes the read model to the session-started, step and handoff topics (batched, idempotent, dead-lettering)."""

from __future__ import annotations

from analytics.domain import CONSUMER_NAME
from analytics.handlers import apply_events
from analytics.settings import Settings
from analytics.uow import AnalyticsUnitOfWork
from rf_contracts import topics
from rfkit.consumer import EventConsumer
from rfkit.service import ServiceRuntime

TOPICS = (
    topics.SESSION_STARTED,
    topics.STEP_CREATED,
    topics.HANDOFF_REQUESTED,
    topics.HANDOFF_CLAIMED,
    topics.HANDOFF_RELEASED,
    topics.HANDOFF_RESOLVED,
)


def register(runtime: ServiceRuntime, settings: Settings) -> EventConsumer:
    return runtime.consumer(
        name=CONSUMER_NAME,
        topics=TOPICS,
        handler=apply_events,
        unit_of_work=AnalyticsUnitOfWork,
        batch=True,
        max_records=settings.consumer_max_records,
        group=settings.consumer_group,
        # The read model is idempotent by itself (steps by id, claims and releases by version, first
        # actions and watermarks only move one way): a redelivered event changes nothing, so no ledger.
        deduplicate=False,
        workers=settings.consumer_workers,
    )
