"""The handoff and its rules: who may claim, release and resolve it, and in which state (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from rfkit.errors import Conflict, Forbidden, NotFound, Unavailable


class Status(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class Action(StrEnum):
    REQUESTED = "requested"
    CLAIMED = "claimed"
    RELEASED = "released"
    RESOLVED = "resolved"
    # Only in the history: the system found the claim stale (the handoff stays claimed unless auto-released).
    STALE = "stale"


# The history note of a release the system made because the claim went stale.
STALE_RELEASE_NOTE = "stale"


LIVE_STATUSES = (Status.OPEN, Status.CLAIMED)


# --- errors (each with a stable code for machine clients)


class HandoffNotFound(NotFound, code="handoff_not_found", detail="handoff not found"): ...


class SessionNotFound(NotFound, code="session_not_found", detail="session not found"): ...


class SessionIsCompleted(Conflict, code="session_completed"): ...


class SessionAlreadyEscalated(Conflict, code="session_already_escalated"): ...


class HandoffAlreadyClaimed(Conflict, code="handoff_already_claimed"): ...


class HandoffIsResolved(Conflict, code="handoff_resolved"): ...


class HandoffChanged(Conflict, code="handoff_changed"):
    """The handoff changed between a conditional write and the look at why it missed: the caller may retry."""


class HandoffNotClaimed(Conflict, code="handoff_not_claimed"): ...


class HandoffIsOpen(Conflict, code="handoff_open"): ...


class NotClaimHolder(Forbidden, code="not_claim_holder"): ...


class SessionsUnavailable(Unavailable, code="sessions_unavailable"):
    """The sessions service could not be asked about a session; the same request may succeed later."""


# --- entities


@dataclass(frozen=True)
class Handoff:
    """A handoff as stored."""

    id: UUID
    account_id: UUID
    session_id: UUID
    reason: str
    priority: str
    status: str
    last_action: str
    version: int
    requested_by: UUID
    requested_at: datetime
    claimed_by: UUID | None
    claimed_at: datetime | None
    resolved_by: UUID | None
    resolved_at: datetime | None
    resolution_note: str | None
    updated_at: datetime
    # claimed_at + stale_after_seconds once the current claim was found stale; None otherwise.
    stale_since: datetime | None = None

    @property
    def stale(self) -> bool:
        return self.status == Status.CLAIMED and self.stale_since is not None

    def state(self) -> HandoffState:
        return HandoffState(id=self.id, status=self.status, claimed_by=self.claimed_by)


@dataclass(frozen=True)
class HistoryEntry:
    """One change of a handoff, and the version it produced."""

    action: str
    actor_id: UUID | None
    actor_type: str
    at: datetime
    version: int
    note: str | None


@dataclass(frozen=True)
class StalePolicy:
    """An account's rule for stale claims; the default (no policy set) never calls a claim stale."""

    stale_after_seconds: int | None = None
    auto_release: bool = False


@dataclass(frozen=True)
class DueStaleClaim:
    """A claim past its deadline with no step on its session since it was made (locked for this transaction)."""

    handoff_id: UUID
    account_id: UUID
    deadline: datetime
    auto_release: bool


@dataclass(frozen=True)
class StaleClaimFound:
    """What the detector did with one claim: marked it stale, and released it if the policy says so."""

    handoff_id: UUID
    account_id: UUID
    deadline: datetime
    found_at: datetime
    auto_released: bool


@dataclass(frozen=True)
class QueueCounts:
    """What the stat card is computed from."""

    open: int
    claimed: int
    oldest_open_requested_at: datetime | None
    median_wait_to_claim_seconds: float | None


@dataclass(frozen=True)
class Actor:
    """The user who asks for a change."""

    user_id: UUID
    is_admin: bool


@dataclass(frozen=True)
class HandoffState:
    """What the rules need to know about a handoff."""

    id: UUID
    status: str
    claimed_by: UUID | None


def explain_lost_claim(state: HandoffState, actor: Actor) -> Literal["already_yours"]:
    """Why a conditional claim changed nothing: the holder claiming again is a no-op, anything else a conflict."""
    if state.status == Status.CLAIMED and state.claimed_by == actor.user_id:
        return "already_yours"
    if state.status == Status.CLAIMED:
        raise HandoffAlreadyClaimed(
            {
                "message": "handoff is already claimed by someone else",
                "handoff_id": str(state.id),
                "claimed_by": str(state.claimed_by),
            }
        )
    if state.status == Status.RESOLVED:
        raise HandoffIsResolved({"message": "handoff is resolved", "handoff_id": str(state.id)})
    # Open again by now (released between our attempt and our look): the caller may simply retry.
    raise HandoffChanged({"message": "handoff changed while claiming it; try again", "handoff_id": str(state.id)})


def check_release(state: HandoffState, actor: Actor) -> None:
    """Only a claimed handoff can be released, by its holder or an admin."""
    if state.status != Status.CLAIMED:
        raise HandoffNotClaimed({"message": f"handoff is {state.status}, not claimed", "handoff_id": str(state.id)})
    if state.claimed_by != actor.user_id and not actor.is_admin:
        raise NotClaimHolder(
            {
                "message": "only the engineer who claimed the handoff or an admin can release it",
                "claimed_by": str(state.claimed_by),
            }
        )


def check_resolve(state: HandoffState, actor: Actor) -> None:
    """A claimed handoff is resolved by its holder or an admin; an open one only by an admin (e.g. a duplicate)."""
    if state.status == Status.RESOLVED:
        raise HandoffIsResolved({"message": "handoff is already resolved", "handoff_id": str(state.id)})
    if actor.is_admin:
        return
    if state.status == Status.OPEN:
        raise HandoffIsOpen(
            {
                "message": "handoff is open: claim it before resolving it (admins may resolve it directly)",
                "handoff_id": str(state.id),
            }
        )
    if state.claimed_by != actor.user_id:
        raise NotClaimHolder(
            {
                "message": "only the engineer who claimed the handoff or an admin can resolve it",
                "claimed_by": str(state.claimed_by),
            }
        )


def system_resolver(*, claimed_by: UUID | None, requested_by: UUID) -> UUID:
    """Who a handoff resolved by its session's completion is attributed to.

    The session.completed event does not say who completed the session, and `resolved_by` must be a user id:
    the holder of the claim is the one working on it, else the engineer who asked for help.
    """
    return claimed_by or requested_by
