"""The use cases of the handoffs service: one async function per command, each in one unit of work."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from handoffs import domain
from handoffs.domain import Action, Actor, Handoff, StaleClaimFound, StalePolicy, Status
from handoffs.ports import SessionLookup
from handoffs.uow import HandoffsUnitOfWork
from rf_contracts import (
    Event,
    HandoffClaimed,
    HandoffReleased,
    HandoffRequested,
    HandoffResolved,
    HandoffStale,
    SessionCompleted,
    StepCreated,
)
from rf_contracts.api import handoffs as api_models
from rf_contracts.api.handoffs import HandoffDetail, HandoffHistoryEntry, HandoffPage, HandoffRead, HandoffStats
from rf_contracts.events import HandoffEvent
from rfkit.clock import utcnow
from rfkit.db import Database

# --- commands


@dataclass(frozen=True)
class EscalateSession:
    account_id: UUID
    user_id: UUID
    session_id: UUID
    reason: str
    priority: str


@dataclass(frozen=True)
class HandoffCommand:
    """A move on one handoff of the account, asked for by `actor`."""

    account_id: UUID
    handoff_id: UUID
    actor: Actor


# Claim and release take nothing but the handoff and the actor; a subclass that adds a field needs its own
# @dataclass(frozen=True), as ResolveHandoff has.
class ClaimHandoff(HandoffCommand): ...


class ReleaseHandoff(HandoffCommand): ...


@dataclass(frozen=True)
class ResolveHandoff(HandoffCommand):
    note: str | None


@dataclass(frozen=True)
class SetStalePolicy:
    account_id: UUID
    user_id: UUID
    stale_after_seconds: int | None
    auto_release: bool


# --- helpers


def _read(row: Handoff) -> HandoffRead:
    fields = dataclasses.asdict(row)
    if not row.stale:
        fields["stale_since"] = None
    return HandoffRead.model_validate({**fields, "stale": row.stale})


def _common(row: Handoff, at: datetime) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": at,
        "account_id": row.account_id,
        "session_id": row.session_id,
        "handoff_id": row.id,
        "version": row.version,
    }


async def _record_change(
    uow: HandoffsUnitOfWork,
    row: Handoff,
    action: Action,
    event: type[HandoffEvent],
    *,
    actor_id: UUID | None,
    at: datetime,
    actor_type: str = "user",
    note: str | None = None,
    **fields: Any,
) -> None:
    """The change that gave `row` its version, told twice: its history row and its event (with `fields`)."""
    history = uow.handoffs.add_history
    await history(handoff=row, action=action, actor_id=actor_id, at=at, actor_type=actor_type, note=note)
    uow.collect(event(**_common(row, at), **fields))


# --- use cases


async def escalate(cmd: EscalateSession, *, db: Database, sessions: SessionLookup) -> HandoffRead:
    """Put a session into its account's queue; 404 for a session the caller cannot see, 409 if not escalable."""
    # Asked synchronously because the answer must be right the moment after the session was created (an event
    # could still be on its way) and because the sessions service is the authority on who may see the session.
    session = await sessions(cmd.session_id)
    if session is None or session.account_id != cmd.account_id:
        raise domain.SessionNotFound()
    if session.status == "completed":
        raise domain.SessionIsCompleted({"message": "session is completed", "session_id": str(cmd.session_id)})
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        repo = uow.handoffs
        await repo.lock_session(session_id=cmd.session_id)
        # The events are the second opinion: a completion the sync check raced with is refused here.
        if await repo.is_session_completed(account_id=cmd.account_id, session_id=cmd.session_id):
            raise domain.SessionIsCompleted({"message": "session is completed", "session_id": str(cmd.session_id)})
        now = utcnow()
        row = await repo.insert_live(
            values={
                "id": uuid.uuid4(),
                "account_id": cmd.account_id,
                "session_id": cmd.session_id,
                "reason": cmd.reason,
                "priority": cmd.priority,
                "status": Status.OPEN.value,
                "last_action": Action.REQUESTED.value,
                "version": 1,
                "requested_by": cmd.user_id,
                "requested_at": now,
                "updated_at": now,
            }
        )
        if row is None:
            live = await repo.live_for_session(account_id=cmd.account_id, session_id=cmd.session_id)
            raise domain.SessionAlreadyEscalated(
                {
                    "message": "session already has an open or claimed handoff",
                    "session_id": str(cmd.session_id),
                    "handoff_id": str(live.id) if live else None,
                    "status": live.status if live else None,
                }
            )
        await _record_change(
            uow, row, Action.REQUESTED, HandoffRequested, actor_id=cmd.user_id, at=now, note=cmd.reason,
            requested_by=row.requested_by, requested_at=row.requested_at, priority=row.priority, reason=row.reason,
        )
    return _read(row)


async def claim(cmd: ClaimHandoff, *, db: Database) -> HandoffRead:
    """Exactly one concurrent claimer wins; the holder claiming again changes nothing."""
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        repo = uow.handoffs
        now = utcnow()
        row = await repo.claim_if_open(
            account_id=cmd.account_id, handoff_id=cmd.handoff_id, user_id=cmd.actor.user_id, at=now
        )
        if row is None:
            current = await repo.get(account_id=cmd.account_id, handoff_id=cmd.handoff_id)
            domain.explain_lost_claim(current.state(), cmd.actor)  # raises unless the caller holds it already
            return _read(current)
        actor_id = cmd.actor.user_id
        await _record_change(
            uow, row, Action.CLAIMED, HandoffClaimed, actor_id=actor_id, at=now, claimed_by=actor_id, claimed_at=now
        )
    return _read(row)


async def _locked_and_checked(
    uow: HandoffsUnitOfWork,
    cmd: HandoffCommand,
    check: Callable[[domain.HandoffState, Actor], None],
) -> datetime:
    """Locks the handoff's row, checks the move's rule against it, and gives the time of the move.

    The row lock keeps a concurrent claim, release or resolve from slipping between check and write.
    """
    current = await uow.handoffs.get(account_id=cmd.account_id, handoff_id=cmd.handoff_id, for_update=True)
    check(current.state(), cmd.actor)
    return utcnow()


async def release(cmd: ReleaseHandoff, *, db: Database) -> HandoffRead:
    """Back to the queue, by the holder or an admin."""
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        now = await _locked_and_checked(uow, cmd, domain.check_release)
        row = await uow.handoffs.release(account_id=cmd.account_id, handoff_id=cmd.handoff_id, at=now)
        actor_id = cmd.actor.user_id
        await _record_change(
            uow, row, Action.RELEASED, HandoffReleased, actor_id=actor_id, at=now, released_by=actor_id, released_at=now
        )
    return _read(row)


async def resolve(cmd: ResolveHandoff, *, db: Database) -> HandoffRead:
    """Closed for good, by the holder or an admin (an admin may also close an open one)."""
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        now = await _locked_and_checked(uow, cmd, domain.check_resolve)
        row = await uow.handoffs.resolve(
            account_id=cmd.account_id, handoff_id=cmd.handoff_id, resolved_by=cmd.actor.user_id, at=now, note=cmd.note
        )
        actor_id = cmd.actor.user_id
        await _record_change(
            uow, row, Action.RESOLVED, HandoffResolved, actor_id=actor_id, at=now, note=cmd.note,
            resolved_by=actor_id, resolved_at=now,
        )
    return _read(row)


async def complete_session(event: SessionCompleted, uow: HandoffsUnitOfWork) -> None:
    """A completed session needs no help any more: remember it, and resolve its live handoff if it has one.

    Idempotent (a second delivery finds nothing live) and order tolerant (a completion that arrives before an
    escalation makes the escalation refuse the session).
    """
    repo = uow.handoffs
    await repo.lock_session(session_id=event.session_id)
    await repo.record_completed_session(
        account_id=event.account_id,
        session_id=event.session_id,
        completed_at=event.completed_at,
        outcome=event.outcome,
    )
    live = await repo.live_for_session(account_id=event.account_id, session_id=event.session_id, for_update=True)
    if live is None:
        return
    resolver = domain.system_resolver(claimed_by=live.claimed_by, requested_by=live.requested_by)
    note = f"session completed ({event.outcome})"
    now = utcnow()
    row = await repo.resolve(account_id=live.account_id, handoff_id=live.id, resolved_by=resolver, at=now, note=note)
    await _record_change(
        uow, row, Action.RESOLVED, HandoffResolved, actor_id=resolver, actor_type="system", at=now, note=note,
        resolved_by=resolver, resolved_at=now,
    )


async def record_steps(events: list[Event], uow: HandoffsUnitOfWork) -> None:
    """Remember the newest step per session: a claim has had a step since it was made iff that step is not older.

    Idempotent and order tolerant by itself (a maximum): a step arriving before its claim, twice, or after an
    older one leaves the same answer.
    """
    latest: dict[tuple[UUID, UUID], datetime] = {}
    for event in events:
        if isinstance(event, StepCreated):
            key = (event.account_id, event.session_id)
            if key not in latest or event.created_at > latest[key]:
                latest[key] = event.created_at
    await uow.handoffs.record_steps(latest=latest)


async def mark_stale_claims(*, db: Database, now: datetime, limit: int) -> list[StaleClaimFound]:
    """Mark the claims past their account's deadline with no step since they were made, once per claim.

    Marking grows the version (a change like any other, with its `handoff.stale` event); with the account's
    auto_release the system then releases the claim (`released_by` null, history note "stale").
    """
    found: list[StaleClaimFound] = []
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        repo = uow.handoffs
        for due in await repo.due_stale_claims_system_wide(now=now, limit=limit):
            row = await repo.mark_stale(
                account_id=due.account_id, handoff_id=due.handoff_id, stale_since=due.deadline, at=now
            )
            assert row.claimed_by is not None and row.claimed_at is not None  # a due claim is claimed
            await _record_change(
                uow, row, Action.STALE, HandoffStale, actor_id=None, actor_type="system", at=now,
                claimed_by=row.claimed_by, claimed_at=row.claimed_at, stale_at=now,
            )
            if due.auto_release:
                row = await repo.release(account_id=due.account_id, handoff_id=due.handoff_id, at=now)
                await _record_change(
                    uow, row, Action.RELEASED, HandoffReleased, actor_id=None, actor_type="system", at=now,
                    note=domain.STALE_RELEASE_NOTE, released_by=None, released_at=now,
                )
            found.append(
                StaleClaimFound(
                    handoff_id=due.handoff_id,
                    account_id=due.account_id,
                    deadline=due.deadline,
                    found_at=now,
                    auto_released=due.auto_release,
                )
            )
    return found


async def set_stale_policy(cmd: SetStalePolicy, *, db: Database) -> api_models.StalePolicy:
    """Replace the account's stale policy; it applies to the claims already running from the detector's next pass."""
    policy = StalePolicy(stale_after_seconds=cmd.stale_after_seconds, auto_release=cmd.auto_release)
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        await uow.handoffs.put_stale_policy(
            account_id=cmd.account_id, policy=policy, updated_by=cmd.user_id, at=utcnow()
        )
    return api_models.StalePolicy.model_validate(dataclasses.asdict(policy))


# --- queries


async def get_stale_policy(*, db: Database, account_id: UUID) -> api_models.StalePolicy:
    """The account's stale policy (never stale, no auto-release, until an admin sets one)."""
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        policy = await uow.handoffs.stale_policy(account_id=account_id)
    return api_models.StalePolicy.model_validate(dataclasses.asdict(policy))


async def get_detail(*, db: Database, account_id: UUID, handoff_id: UUID) -> HandoffDetail:
    """One handoff with its history, oldest change first."""
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        row = await uow.handoffs.get(account_id=account_id, handoff_id=handoff_id)
        entries = await uow.handoffs.history_of(account_id=account_id, handoff_id=handoff_id)
    return HandoffDetail(
        **_read(row).model_dump(),
        history=[HandoffHistoryEntry.model_validate(dataclasses.asdict(e)) for e in entries],
    )


async def list_queue(
    *, db: Database, account_id: UUID, status: str | None, claimed_by: UUID | None, limit: int, offset: int
) -> HandoffPage:
    """The account's queue, most urgent first, then oldest first."""
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        rows, total = await uow.handoffs.page(
            account_id=account_id, status=status, claimed_by=claimed_by, limit=limit, offset=offset
        )
    return HandoffPage(items=[_read(r) for r in rows], total=total, limit=limit, offset=offset)


async def queue_stats(*, db: Database, account_id: UUID) -> HandoffStats:
    """The stat card: open, claimed, oldest open age, median wait-to-claim over the last 24 hours."""
    now = utcnow()
    async with db.unit_of_work(HandoffsUnitOfWork) as uow:
        counts = await uow.handoffs.stats(account_id=account_id, now=now)
    oldest = counts.oldest_open_requested_at
    return HandoffStats(
        open=counts.open,
        claimed=counts.claimed,
        oldest_open_age_seconds=max(0.0, (now - oldest).total_seconds()) if oldest is not None else None,
        median_wait_to_claim_seconds_24h=counts.median_wait_to_claim_seconds,
    )
