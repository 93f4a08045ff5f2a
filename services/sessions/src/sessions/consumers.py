"""Subscriptions of the sessions service: handoff events become each session's escalation view."""

from __future__ import annotations

from rf_contracts import Event, HandoffEvent, topics
from rfkit.db import UnitOfWork
from rfkit.service import ServiceRuntime
from sessions import handlers

HANDOFF_TOPICS = [topics.HANDOFF_REQUESTED, topics.HANDOFF_CLAIMED, topics.HANDOFF_RELEASED, topics.HANDOFF_RESOLVED]


async def on_handoff_events(uow: UnitOfWork, events: list[Event]) -> None:
    await handlers.apply_handoff_events(uow, [e for e in events if isinstance(e, HandoffEvent)])


def register(runtime: ServiceRuntime) -> None:
    """Subscribe before the app starts (the runtime starts the broker in its lifespan)."""
    runtime.consumer(name="sessions-escalations", topics=HANDOFF_TOPICS, handler=on_handoff_events, batch=True)
