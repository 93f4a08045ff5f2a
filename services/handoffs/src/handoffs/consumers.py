"""Events the handoffs service consumes: a completed session resolves its handoff; steps keep claims fresh."""

from __future__ import annotations

from handoffs import handlers
from handoffs.uow import HandoffsUnitOfWork
from rf_contracts import Event, SessionCompleted, topics
from rfkit.service import ServiceRuntime

SESSION_COMPLETED_CONSUMER = "handoffs.session-completed"
STEP_CREATED_CONSUMER = "handoffs.step-created"


async def on_session_completed(uow: HandoffsUnitOfWork, events: list[Event]) -> None:
    """Apply a batch in arrival order, in the transaction that also marks the events as processed."""
    for event in events:
        if isinstance(event, SessionCompleted):
            await handlers.complete_session(event, uow)


async def on_step_created(uow: HandoffsUnitOfWork, events: list[Event]) -> None:
    """Remember each session's newest step: the stale-claim detector asks whether one came since the claim."""
    await handlers.record_steps(events, uow)


def register(runtime: ServiceRuntime) -> None:
    for name, topic, handler in (
        (SESSION_COMPLETED_CONSUMER, topics.SESSION_COMPLETED, on_session_completed),
        (STEP_CREATED_CONSUMER, topics.STEP_CREATED, on_step_created),
    ):
        runtime.consumer(name=name, topics=[topic], handler=handler, batch=True, unit_of_work=HandoffsUnitOfWork)
