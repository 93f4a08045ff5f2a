"""HTTP routes of the handoffs service (mounted under /api/v1): validate -> command -> handler -> response."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Query

from handoffs import handlers
from handoffs.deps import Admin, CurrentPrincipal, Db, Engineer, SessionsLookup, actor_of
from rf_contracts.api.handoffs import (
    HandoffCreate,
    HandoffDetail,
    HandoffPage,
    HandoffRead,
    HandoffResolve,
    HandoffStats,
    StalePolicy,
    StatusFilter,
)

router = APIRouter(tags=["handoffs"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        403: "Role too low, or not the holder of the claim",
        404: "Not found, or belonging to another account",
        409: "State conflict (detail says which)",
        503: "The sessions service could not be asked",
    }
    return {code: {"description": text[code]} for code in codes}


@router.post("/handoffs", status_code=201, responses=_errors(403, 404, 409, 503))
async def escalate(body: HandoffCreate, principal: Engineer, db: Db, sessions: SessionsLookup) -> HandoffRead:
    """Escalate a session into its account's queue."""
    command = handlers.EscalateSession(
        account_id=principal.account_id,
        user_id=principal.user_id,
        session_id=body.session_id,
        reason=body.reason,
        priority=body.priority,
    )
    return await handlers.escalate(command, db=db, sessions=sessions)


@router.get("/handoffs")
async def list_handoffs(
    principal: CurrentPrincipal,
    db: Db,
    status: StatusFilter | None = None,
    mine: Annotated[bool, Query(description="Only handoffs claimed by the caller")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HandoffPage:
    """The queue, most urgent first, then oldest first. `status=released`: open again after a release."""
    return await handlers.list_queue(
        db=db,
        account_id=principal.account_id,
        status=status,
        claimed_by=principal.user_id if mine else None,
        limit=limit,
        offset=offset,
    )


# Declared before /handoffs/{handoff_id} so that "stats" is not taken for an id.
@router.get("/handoffs/stats")
async def handoff_stats(principal: CurrentPrincipal, db: Db) -> HandoffStats:
    """The queue stat card of the caller's account."""
    return await handlers.queue_stats(db=db, account_id=principal.account_id)


# Declared before /handoffs/{handoff_id} so that "policy" is not taken for an id.
@router.get("/handoffs/policy", responses=_errors(403))
async def get_stale_policy(principal: Engineer, db: Db) -> StalePolicy:
    """The account's stale-claim policy (engineer+); never stale until an admin sets one."""
    return await handlers.get_stale_policy(db=db, account_id=principal.account_id)


@router.put("/handoffs/policy", responses=_errors(403))
async def put_stale_policy(body: StalePolicy, principal: Admin, db: Db) -> StalePolicy:
    """Replace the account's stale-claim policy (admin); it applies to the claims already running."""
    command = handlers.SetStalePolicy(
        account_id=principal.account_id,
        user_id=principal.user_id,
        stale_after_seconds=body.stale_after_seconds,
        auto_release=body.auto_release,
    )
    return await handlers.set_stale_policy(command, db=db)


@router.get("/handoffs/{handoff_id}", responses=_errors(404))
async def get_handoff(handoff_id: UUID, principal: CurrentPrincipal, db: Db) -> HandoffDetail:
    """One handoff with its history."""
    return await handlers.get_detail(db=db, account_id=principal.account_id, handoff_id=handoff_id)


@router.post("/handoffs/{handoff_id}/claim", responses=_errors(403, 404, 409))
async def claim_handoff(handoff_id: UUID, principal: Engineer, db: Db) -> HandoffRead:
    """Claim it; exactly one concurrent claimer wins, the others get 409 naming the holder."""
    command = handlers.ClaimHandoff(account_id=principal.account_id, handoff_id=handoff_id, actor=actor_of(principal))
    return await handlers.claim(command, db=db)


@router.post("/handoffs/{handoff_id}/release", responses=_errors(403, 404, 409))
async def release_handoff(handoff_id: UUID, principal: Engineer, db: Db) -> HandoffRead:
    """Back to open, by the holder or an admin."""
    command = handlers.ReleaseHandoff(account_id=principal.account_id, handoff_id=handoff_id, actor=actor_of(principal))
    return await handlers.release(command, db=db)


@router.post("/handoffs/{handoff_id}/resolve", responses=_errors(403, 404, 409))
async def resolve_handoff(
    handoff_id: UUID,
    principal: Engineer,
    db: Db,
    body: Annotated[HandoffResolve | None, Body()] = None,
) -> HandoffRead:
    """Resolve it, by the holder or an admin (an admin may also resolve an open one)."""
    command = handlers.ResolveHandoff(
        account_id=principal.account_id,
        handoff_id=handoff_id,
        actor=actor_of(principal),
        note=(body.resolution_note or None) if body else None,
    )
    return await handlers.resolve(command, db=db)
