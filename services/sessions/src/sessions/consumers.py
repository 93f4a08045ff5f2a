"""Subscriptions of the sessions service: handoff events become each session's escalation view."""

from __future__ import annotations

from rf_contracts import Event, HandoffEvent, topics
from rfkit.service import ServiceRuntime
from sessions.handlers.escalations import apply_handoff_events
from sessions.uow import SessionsUnitOfWork

HANDOFF_TOPICS = [topics.HANDOFF_REQUESTED, topics.HANDOFF_CLAIMED, topics.HANDOFF_RELEASED, topics.HANDOFF_RESOLVED]


async def on_handoff_events(uow: SessionsUnitOfWork, events: list[Event]) -> None:
    await apply_handoff_events([e for e in events if isinstance(e, HandoffEvent)], uow)


def register(runtime: ServiceRuntime) -> None:
    """Subscribe before the app starts (the runtime starts the broker in its lifespan)."""
    runtime.consumer(
        name="sessions-escalations",
        topics=HANDOFF_TOPICS,
        handler=on_handoff_events,
        batch=True,
        unit_of_work=SessionsUnitOfWork,
    )
