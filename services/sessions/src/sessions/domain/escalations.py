"""Each session's escalation view, folded from handoff events whatever order they arrive in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from rf_contracts import HandoffClaimed, HandoffEvent, HandoffReleased, HandoffRequested, HandoffResolved


@dataclass(frozen=True)
class HandoffView:
    """What the sessions service knows of one handoff, built only from its events, whatever their order.

    `status` comes from the event with the highest version. The claimer is the one of the claim with the
    highest version unless a release has a higher version still (the rule analytics uses for claimed_at).
    """

    handoff_id: UUID
    account_id: UUID
    session_id: UUID
    status: str
    version: int
    status_at: datetime
    claim_version: int | None = None
    claimed_by: UUID | None = None
    claimed_at: datetime | None = None
    release_version: int | None = None

    @property
    def current_claimer(self) -> tuple[UUID | None, datetime | None]:
        if self.claim_version is None or (self.release_version or 0) > self.claim_version:
            return None, None
        return self.claimed_by, self.claimed_at


_STATUS = {
    HandoffRequested: "open",
    HandoffClaimed: "claimed",
    HandoffReleased: "released",
    HandoffResolved: "resolved",
}


def apply_handoff_event(view: HandoffView | None, event: HandoffEvent) -> HandoffView:
    """The view after `event`; an event older than what the view already holds changes only what it alone knows."""
    status = _STATUS[type(event)]
    if view is None:
        view = HandoffView(
            handoff_id=event.handoff_id,
            account_id=event.account_id,
            session_id=event.session_id,
            status=status,
            version=event.version,
            status_at=event.occurred_at,
        )
    elif event.version > view.version:
        view = replace(view, status=status, version=event.version, status_at=event.occurred_at)
    if isinstance(event, HandoffClaimed) and event.version > (view.claim_version or 0):
        view = replace(view, claim_version=event.version, claimed_by=event.claimed_by, claimed_at=event.claimed_at)
    if isinstance(event, HandoffReleased) and event.version > (view.release_version or 0):
        view = replace(view, release_version=event.version)
    return view


def current_escalation(views: Sequence[HandoffView]) -> HandoffView | None:
    """The handoff to show on a session: one still in play (not resolved) first, then the most recent change."""
    if not views:
        return None
    return max(views, key=lambda v: (v.status != "resolved", v.status_at, v.version, str(v.handoff_id)))
