"""Use case of the handoff events the service consumes: fold them into each session's escalation view."""

from __future__ import annotations

from collections.abc import Sequence

from rf_contracts import HandoffEvent
from sessions.domain import apply_handoff_event
from sessions.uow import SessionsUnitOfWork


async def apply_handoff_events(events: Sequence[HandoffEvent], uow: SessionsUnitOfWork) -> None:
    """Fold handoff events into each session's escalation view; stale versions change nothing they should not.

    Runs in the consumer's unit of work, which also marks the events as processed.
    """
    for event in events:
        view = await uow.escalations.lock_across_accounts(handoff_id=event.handoff_id)
        await uow.escalations.save(apply_handoff_event(view, event))
