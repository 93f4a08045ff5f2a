"""Public REST models of the handoffs API (escalation queue), shared by the handoffs service and the gateway."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from rf_contracts.api import examples as ex
from rf_contracts.api.examples import example
from rf_contracts.api.text import Storable

Priority = Literal["low", "normal", "high", "urgent"]
# Stored states. "released" is an action, not a state: a released handoff is open again.
HandoffStatus = Literal["open", "claimed", "resolved"]
# What the queue can be filtered by: a state, or "released" = open handoffs whose latest action was a release.
StatusFilter = Literal["open", "claimed", "released", "resolved"]
HandoffAction = Literal["requested", "claimed", "released", "resolved"]
# What a history entry records: the actions, and the system marking a claim stale (which grows the version too).
HistoryAction = Literal["requested", "claimed", "released", "resolved", "stale"]
# Shorter than a minute would call a claim stale before anyone could reasonably act; ten years bounds the arithmetic.
MIN_STALE_AFTER_SECONDS = 60
MAX_STALE_AFTER_SECONDS = 10 * 365 * 24 * 3600

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Storable]
ResolutionNote = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), Storable]


class HandoffCreate(BaseModel):
    """Escalate a session into its account's queue."""

    model_config = example({"session_id": ex.SESSION_ID, "reason": "The light pattern is not in the tree",
                            "priority": "high"}, extra="forbid")

    session_id: UUID
    reason: Reason
    priority: Priority = "normal"


class HandoffResolve(BaseModel):
    """Close a handoff; the note is kept with it."""

    model_config = example({"resolution_note": "Replaced the fuser unit."}, extra="forbid")

    resolution_note: ResolutionNote | None = None


class HandoffRead(BaseModel):
    """A handoff as the queue shows it."""

    model_config = example(ex.HANDOFF)

    id: UUID
    account_id: UUID
    session_id: UUID
    reason: str
    priority: Priority
    status: HandoffStatus
    last_action: HandoffAction = Field(description="The latest change; 'released' means open again after a claim")
    version: int = Field(description="Grows by one with every change; the same number as on the handoff events")
    requested_by: UUID
    requested_at: AwareDatetime
    claimed_by: UUID | None
    claimed_at: AwareDatetime | None
    resolved_by: UUID | None
    resolved_at: AwareDatetime | None
    resolution_note: str | None
    updated_at: AwareDatetime
    stale: bool = Field(
        default=False, description="The current claim saw no step for the account's stale_after_seconds"
    )
    stale_since: AwareDatetime | None = Field(
        default=None, description="claimed_at + stale_after_seconds of the claim found stale; null if not stale"
    )


# The example of a history entry, shown alone and as the second entry of a handoff's history.
_CLAIMED_ENTRY = {
    "action": "claimed",
    "actor_id": ex.OTHER_USER_ID,
    "actor_type": "user",
    "at": ex.LATER,
    "version": 2,
    "note": None,
}


class HandoffHistoryEntry(BaseModel):
    """One change of a handoff: what, by whom, when, and the version it produced."""

    model_config = example(_CLAIMED_ENTRY)

    action: HistoryAction
    actor_id: UUID | None = Field(description="null for a change the system made on its own (a stale claim)")
    actor_type: Literal["user", "system"] = Field(
        description="'system' when the handoff was resolved because its session was completed, or its claim went stale"
    )
    at: AwareDatetime
    version: int
    note: str | None = None


class StalePolicy(BaseModel):
    """When a claim whose session saw no step counts as stale, and whether the system then releases it."""

    model_config = example({"stale_after_seconds": 900, "auto_release": True}, extra="forbid")

    stale_after_seconds: int | None = Field(
        ge=MIN_STALE_AFTER_SECONDS,
        le=MAX_STALE_AFTER_SECONDS,
        strict=True,
        description="Seconds after claimed_at without a step on the session; at least 60; null: claims never go stale",
    )
    auto_release: bool = Field(strict=True, description="Release a stale claim (back to open) as the system")


class HandoffDetail(HandoffRead):
    """A handoff with its history, oldest change first."""

    model_config = example(
        {
            **ex.HANDOFF,
            "history": [
                {
                    "action": "requested",
                    "actor_id": ex.USER_ID,
                    "actor_type": "user",
                    "at": ex.AT,
                    "version": 1,
                    "note": None,
                },
                _CLAIMED_ENTRY,
            ],
        }
    )

    history: list[HandoffHistoryEntry]


class HandoffPage(BaseModel):

    model_config = example(ex.page(ex.HANDOFF))

    items: list[HandoffRead]
    total: int
    limit: int
    offset: int


class HandoffStats(BaseModel):
    """The queue stat card of the caller's account."""

    model_config = example(
        {"open": 3, "claimed": 1, "oldest_open_age_seconds": 5400.0, "median_wait_to_claim_seconds_24h": 720.0}
    )

    open: int
    claimed: int
    oldest_open_age_seconds: float | None = Field(description="Age of the oldest open handoff; null if none")
    median_wait_to_claim_seconds_24h: float | None = Field(
        description="Median of (claimed_at - requested_at) over the claims made in the last 24 hours; null if none"
    )
