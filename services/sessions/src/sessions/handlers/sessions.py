"""Use cases of troubleshooting sessions: start, update or answer, complete, read, list and export."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from rf_contracts import SessionCompleted, SessionStarted
from rf_contracts.api.sessions import (
    Answer,
    Escalation,
    ExportedTree,
    Outcome,
    SessionExport,
    SessionPage,
    SessionRead,
    readable_context,
)
from rfkit.clock import utcnow
from rfkit.db import Database
from rfkit.etags import IfMatch, micros, strong_etag
from sessions.domain import (
    HandoffView,
    SessionNotFound,
    SessionState,
    TreeNotFound,
    TreeVersion,
    answer_text,
    current_escalation,
    export_path,
    follow_option,
    next_write,
)
from sessions.handlers.steps import locked_session, record_step
from sessions.uow import SessionsUnitOfWork


def session_etag(session_id: UUID, updated_at: datetime) -> str:
    """A session's strong ETag: every write through the API moves updated_at forward (domain.next_write)."""
    return strong_etag("s", session_id, micros(updated_at))


@dataclass(frozen=True)
class StartSession:
    account_id: UUID
    user_id: UUID
    tree_id: UUID
    title: str | None = None
    context: Any = None


@dataclass(frozen=True)
class UpdateSession:
    account_id: UUID
    user_id: UUID
    session_id: UUID
    title: str | None = None
    notes: str | None = None
    answer: Answer | None = None
    if_match: IfMatch | None = None


@dataclass(frozen=True)
class CompleteSession:
    account_id: UUID
    user_id: UUID
    session_id: UUID
    outcome: Outcome
    summary: str | None = None


def _escalation(views: Sequence[HandoffView]) -> Escalation | None:
    view = current_escalation(views)
    if view is None:
        return None
    claimed_by, claimed_at = view.current_claimer
    return Escalation(
        handoff_id=view.handoff_id,
        status=view.status,  # type: ignore[arg-type]
        claimed_by=claimed_by,
        claimed_at=claimed_at,
        version=view.version,
        updated_at=view.status_at,
    )


def _session_read(state: SessionState, tree: TreeVersion, views: Sequence[HandoffView]) -> SessionRead:
    return SessionRead(
        id=state.id,
        account_id=state.account_id,
        tree_id=state.tree_id,
        tree_version=state.tree_version,
        tree_title=tree.title,
        title=state.title,
        context=readable_context(state.context),
        notes=state.notes,
        status=state.status,  # type: ignore[arg-type]
        current_node_id=state.current_node_id,
        current_node=tree.node_index()[state.current_node_id],
        started_by=state.started_by,
        started_at=state.started_at,
        updated_at=state.updated_at,
        completed_at=state.completed_at,
        completed_by=state.completed_by,
        outcome=state.outcome,  # type: ignore[arg-type]
        summary=state.summary,
        escalation=_escalation(views),
    )


async def _reads(uow: SessionsUnitOfWork, *, account_id: UUID, states: Sequence[SessionState]) -> list[SessionRead]:
    """Sessions as the API answers them: with their tree version's title and current node, and escalation."""
    trees = await uow.trees.versions(account_id=account_id, keys={(s.tree_id, s.tree_version) for s in states})
    views = await uow.escalations.of_sessions(account_id=account_id, session_ids=[s.id for s in states])
    return [_session_read(s, trees[(s.tree_id, s.tree_version)], views.get(s.id, [])) for s in states]


async def _read(uow: SessionsUnitOfWork, *, account_id: UUID, session_id: UUID) -> SessionRead:
    state = await uow.sessions.get(account_id=account_id, session_id=session_id)
    if state is None:
        raise SessionNotFound()
    return (await _reads(uow, account_id=account_id, states=[state]))[0]


async def start_session(cmd: StartSession, *, db: Database) -> SessionRead:
    """Start on the latest version of a live tree, at its root; publishes session.started (with that version's
    title and category, for consumers that group by tree)."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        tree = await uow.trees.get(account_id=cmd.account_id, tree_id=cmd.tree_id)
        if tree is None:
            raise TreeNotFound()
        now = utcnow()
        state = SessionState(
            id=uuid.uuid4(),
            account_id=cmd.account_id,
            tree_id=cmd.tree_id,
            tree_version=tree.version,
            title=cmd.title or tree.title,
            context=cmd.context,
            notes="",
            status="active",
            current_node_id=tree.root_node_id,
            started_by=cmd.user_id,
            started_at=now,
            updated_at=now,
        )
        await uow.sessions.add(state)
        uow.collect(
            SessionStarted(
                event_id=uuid.uuid4(),
                occurred_at=now,
                account_id=cmd.account_id,
                session_id=state.id,
                tree_id=cmd.tree_id,
                tree_version=tree.version,
                started_by=cmd.user_id,
                started_at=now,
                tree_title=tree.title,
                tree_category=tree.category,
            )
        )
        return await _read(uow, account_id=cmd.account_id, session_id=state.id)


async def update_session(cmd: UpdateSession, *, db: Database) -> SessionRead:
    """Change title and notes, and/or follow an option of the current node (recorded as an answer step).

    If-Match is compared under the session's row lock, so of concurrent writes naming one ETag only one wins.
    """
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        state = await locked_session(uow, account_id=cmd.account_id, session_id=cmd.session_id)
        if cmd.if_match is not None:
            cmd.if_match.check(session_etag(state.id, state.updated_at))
        state.ensure_active()
        now = next_write(state.updated_at, utcnow())
        changed = replace(
            state,
            title=cmd.title if cmd.title is not None else state.title,
            notes=cmd.notes if cmd.notes is not None else state.notes,
            updated_at=now,
        )
        if cmd.answer is not None:
            tree = await uow.trees.get(
                account_id=cmd.account_id, tree_id=state.tree_id, version=state.tree_version, live_only=False
            )
            if tree is None:  # the session's version is kept by a foreign key: only a broken database gets here
                raise TreeNotFound()
            nodes = tree.node_index()
            answer = cmd.answer
            target = follow_option(nodes, state.current_node_id, answer.node_id, answer.option_label)
            changed = replace(changed, current_node_id=target.id)
            await record_step(
                uow,
                account_id=cmd.account_id,
                user_id=cmd.user_id,
                session_id=state.id,
                kind="answer",
                content=answer_text(nodes[answer.node_id], answer.option_label),
                actor_type="human",
                node_id=answer.node_id,
                option_label=answer.option_label,
                next_node_id=target.id,
                at=now,
            )
        await uow.sessions.save(changed)
        return await _read(uow, account_id=cmd.account_id, session_id=state.id)


async def complete_session(cmd: CompleteSession, *, db: Database) -> SessionRead:
    """Close the session with an outcome (409 when it is already closed); publishes session.completed."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        state = await locked_session(uow, account_id=cmd.account_id, session_id=cmd.session_id)
        state.ensure_active()
        now = next_write(state.updated_at, utcnow())
        await uow.sessions.save(
            replace(
                state,
                status="completed",
                outcome=cmd.outcome,
                summary=cmd.summary or None,
                completed_at=now,
                completed_by=cmd.user_id,
                updated_at=now,
            )
        )
        uow.collect(
            SessionCompleted(
                event_id=uuid.uuid4(),
                occurred_at=now,
                account_id=cmd.account_id,
                session_id=state.id,
                completed_at=now,
                outcome=cmd.outcome,
            )
        )
        return await _read(uow, account_id=cmd.account_id, session_id=state.id)


async def get_session(*, db: Database, account_id: UUID, session_id: UUID) -> SessionRead:
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        return await _read(uow, account_id=account_id, session_id=session_id)


async def list_sessions(
    *,
    db: Database,
    account_id: UUID,
    started_by: UUID | None,
    status: str | None,
    tree_id: UUID | None,
    limit: int,
    offset: int,
) -> SessionPage:
    """The account's sessions (or one user's: `started_by`), newest first."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        states, total = await uow.sessions.page(
            account_id=account_id, started_by=started_by, status=status, tree_id=tree_id, limit=limit, offset=offset
        )
        items = await _reads(uow, account_id=account_id, states=states)
    return SessionPage(items=items, total=total, limit=limit, offset=offset)


async def export_session(*, db: Database, account_id: UUID, session_id: UUID) -> SessionExport:
    """The session, the path it took through its tree version, every step and the outcome, as one document."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        session = await _read(uow, account_id=account_id, session_id=session_id)
        tree = await uow.trees.get(
            account_id=account_id, tree_id=session.tree_id, version=session.tree_version, live_only=False
        )
        if tree is None:  # kept by a foreign key, as above
            raise TreeNotFound()
        steps, _ = await uow.steps.page(account_id=account_id, session_id=session_id)
    return SessionExport(
        exported_at=utcnow(),
        session=session,
        tree=ExportedTree(id=tree.tree_id, version=tree.version, title=tree.title, category=tree.category),
        path=export_path(tree, steps),
        steps=steps,
        outcome=session.outcome,
        summary=session.summary,
        completed_at=session.completed_at,
    )
