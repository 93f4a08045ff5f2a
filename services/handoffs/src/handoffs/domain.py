"""The handoff and its rules: who may claim, release and resolve it, and in which state (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from uuid import UUID

from rfkit.errors import Conflict, Forbidden


class Status(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class Action(StrEnum):
    REQUESTED = "requested"
    CLAIMED = "claimed"
    RELEASED = "released"
    RESOLVED = "resolved"


LIVE_STATUSES = (Status.OPEN, Status.CLAIMED)


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
        raise Conflict(
            {
                "message": "handoff is already claimed by someone else",
                "handoff_id": str(state.id),
                "claimed_by": str(state.claimed_by),
            }
        )
    if state.status == Status.RESOLVED:
        raise Conflict({"message": "handoff is resolved", "handoff_id": str(state.id)})
    # Open again by now (released between our attempt and our look): the caller may simply retry.
    raise Conflict({"message": "handoff changed while claiming it; try again", "handoff_id": str(state.id)})


def check_release(state: HandoffState, actor: Actor) -> None:
    """Only a claimed handoff can be released, by its holder or an admin."""
    if state.status != Status.CLAIMED:
        raise Conflict({"message": f"handoff is {state.status}, not claimed", "handoff_id": str(state.id)})
    if state.claimed_by != actor.user_id and not actor.is_admin:
        raise Forbidden(
            {
                "message": "only the engineer who claimed the handoff or an admin can release it",
                "claimed_by": str(state.claimed_by),
            }
        )


def check_resolve(state: HandoffState, actor: Actor) -> None:
    """A claimed handoff is resolved by its holder or an admin; an open one only by an admin (e.g. a duplicate)."""
    if state.status == Status.RESOLVED:
        raise Conflict({"message": "handoff is already resolved", "handoff_id": str(state.id)})
    if actor.is_admin:
        return
    if state.status == Status.OPEN:
        raise Conflict(
            {
                "message": "handoff is open: claim it before resolving it (admins may resolve it directly)",
                "handoff_id": str(state.id),
            }
        )
    if state.claimed_by != actor.user_id:
        raise Forbidden(
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
