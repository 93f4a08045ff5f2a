"""The escalation metric's rules in plain Python: folding a batch of events into changes, periods, windows."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast
from uuid import UUID

from rf_contracts import Event, HandoffClaimed, HandoffReleased, HandoffRequested, StepCreated
from rf_contracts.api.analytics import PERIODS

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


@dataclass
class HandoffChange:
    """One handoff's newest claim, newest release (versions decide, not arrival order) and request time in a batch."""

    handoff_id: UUID
    account_id: UUID
    session_id: UUID
    claim_version: int | None = None
    claimed_at: datetime | None = None
    release_version: int | None = None
    # A handoff is requested once (its first version): any copy of that event carries the same time.
    requested_at: datetime | None = None

    def claim(self, version: int, claimed_at: datetime) -> None:
        if self.claim_version is None or version > self.claim_version:
            self.claim_version, self.claimed_at = version, claimed_at

    def release(self, version: int) -> None:
        if self.release_version is None or version > self.release_version:
            self.release_version = version


@dataclass
class Changes:
    """A batch of events reduced to what the read model applies set-based in one transaction."""

    steps: list[StepTime] = field(default_factory=list)
    handoffs: dict[UUID, HandoffChange] = field(default_factory=dict)
    # Per account, the newest occurred_at among the batch's events: the account's data_as_of candidate.
    watermarks: dict[UUID, datetime] = field(default_factory=dict)

    def sessions(self) -> set[UUID]:
        """Sessions whose joins this batch touches (they are locked for the transaction)."""
        return {s.session_id for s in self.steps} | {h.session_id for h in self.handoffs.values()}


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
                change.claim(handoff.version, cast(HandoffClaimed, handoff).claimed_at)
            elif kind is HandoffReleased:
                change.release(handoff.version)
            else:
                change.requested_at = cast(HandoffRequested, handoff).requested_at
        # handoff.resolved changes no claim (resolving keeps it): only the watermark.
    return changes


def window(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[now - period, now] for a period the API accepts."""
    return now - PERIODS[period], now
