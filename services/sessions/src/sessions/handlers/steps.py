"""Use cases of a session's journal: add a step (by a person or the assistant) and read the steps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypedDict
from uuid import UUID

from rf_contracts import StepCreated
from rf_contracts.api.sessions import StepCreate, StepPage, StepRead
from rfkit.clock import utcnow
from rfkit.db import Database
from sessions.domain import NodeNotInTree, SessionNotFound, SessionState, next_write, node_index
from sessions.uow import SessionsUnitOfWork


@dataclass(frozen=True)
class AddStep:
    account_id: UUID
    user_id: UUID
    session_id: UUID
    step: StepCreate


class SessionEventFields(TypedDict):
    """What every event of a session carries besides its own fields: a new event id, when, and whose it is."""

    event_id: UUID
    occurred_at: datetime
    account_id: UUID
    session_id: UUID


def event_fields(session: SessionState, at: datetime) -> SessionEventFields:
    return {"event_id": uuid.uuid4(), "occurred_at": at, "account_id": session.account_id, "session_id": session.id}


async def locked_session(uow: SessionsUnitOfWork, *, account_id: UUID, session_id: UUID) -> SessionState:
    """The session, its row locked to commit: writes to one session happen one at a time."""
    state = await uow.sessions.get(account_id=account_id, session_id=session_id, lock=True)
    if state is None:
        raise SessionNotFound()
    return state


async def record_step(
    uow: SessionsUnitOfWork,
    session: SessionState,
    entry: StepCreate,
    *,
    user_id: UUID,
    at: datetime,
    option_label: str | None = None,
    next_node_id: str | None = None,
) -> StepRead:
    """Write a step of the (locked) session and collect its session.step_created event; an answer's step also
    says where it led.

    actor_id: the principal for human steps; null for the assistant's (ai) steps, whose author is not a
    person. Who typed an ai step in is kept as `recorded_by` on the step (API only, not in the event).
    """
    step = StepRead(
        **dict(entry),
        id=uuid.uuid4(),
        session_id=session.id,
        account_id=session.account_id,
        option_label=option_label,
        next_node_id=next_node_id,
        actor_id=user_id if entry.actor_type == "human" else None,
        recorded_by=user_id,
        created_at=at,
    )
    await uow.steps.add(step)
    uow.collect(
        StepCreated(
            **event_fields(session, at),
            step_id=step.id,
            created_at=at,
            kind=step.kind,
            actor_type=step.actor_type,
            actor_id=step.actor_id,
        )
    )
    return step


async def add_step(cmd: AddStep, *, db: Database) -> StepRead:
    """Add a journal entry to an active session; publishes session.step_created."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        state = await locked_session(uow, account_id=cmd.account_id, session_id=cmd.session_id)
        state.ensure_active()
        node_id = cmd.step.node_id
        if node_id is not None:
            tree = await uow.trees.get(
                account_id=cmd.account_id, tree_id=state.tree_id, version=state.tree_version, live_only=False
            )
            if tree is None or node_id not in node_index(tree.nodes):
                raise NodeNotInTree(f"node {node_id!r} is not a node of this session's tree")
        now = next_write(state.updated_at, utcnow())
        step = await record_step(uow, state, cmd.step, user_id=cmd.user_id, at=now)
        await uow.sessions.save(replace(state, updated_at=now))
        return step


async def list_steps(*, db: Database, account_id: UUID, session_id: UUID, limit: int, offset: int) -> StepPage:
    """The journal, oldest first (404 for a session the account does not have)."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        if await uow.sessions.get(account_id=account_id, session_id=session_id) is None:
            raise SessionNotFound()
        items, total = await uow.steps.page(account_id=account_id, session_id=session_id, limit=limit, offset=offset)
    return StepPage(items=items, total=total, limit=limit, offset=offset)
