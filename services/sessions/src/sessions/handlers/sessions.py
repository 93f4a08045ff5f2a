"""Use cases of troubleshooting sessions: start, update or answer, complete, read, list and export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from rf_contracts import SessionCompleted, SessionStarted
from rf_contracts.api.sessions import (
    Escalation,
    ExportedTree,
    SessionComplete,
    SessionCreate,
    SessionExport,
    SessionPage,
    SessionRead,
    SessionUpdate,
    StepCreate,
    readable_context,
)
from rf_contracts.api.trees import TreeRead
from rfkit.clock import utcnow
from rfkit.db import Database
from rfkit.etags import IfMatch, micros, strong_etag
from sessions.domain import (
    HandoffView,
    SessionFilter,
    SessionNotFound,
    SessionState,
    TreeNotFound,
    answer_text,
    current_escalation,
    export_path,
    follow_option,
    next_write,
    node_index,
)
from sessions.handlers.steps import event_fields, locked_session, record_step
from sessions.uow import SessionsUnitOfWork


def session_etag(session_id: UUID, updated_at: datetime) -> str:
    """A session's strong ETag: every write through the API moves updated_at forward (domain.next_write)."""
    return strong_etag("s", session_id, micros(updated_at))


@dataclass(frozen=True)
class StartSession:
    account_id: UUID
    user_id: UUID
    session: SessionCreate


@dataclass(frozen=True)
class UpdateSession:
    account_id: UUID
    user_id: UUID
    session_id: UUID
    change: SessionUpdate
    if_match: IfMatch | None = None


@dataclass(frozen=True)
class CompleteSession:
    account_id: UUID
    user_id: UUID
    session_id: UUID
    completion: SessionComplete


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


def _session_read(state: SessionState, tree: TreeRead, views: Sequence[HandoffView]) -> SessionRead:
    return SessionRead(
        **(vars(state) | {"context": readable_context(state.context)}),
        tree_title=tree.title,
        current_node=node_index(tree.nodes)[state.current_node_id],
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
        tree = await uow.trees.get(account_id=cmd.account_id, tree_id=cmd.session.tree_id)
        if tree is None:
            raise TreeNotFound()
        now = utcnow()
        state = SessionState.start(tree, cmd.session, started_by=cmd.user_id, at=now)
        await uow.sessions.add(state)
        uow.collect(
            SessionStarted(
                **event_fields(state, now),
                tree_id=state.tree_id,
                tree_version=state.tree_version,
                started_by=state.started_by,
                started_at=state.started_at,
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
        change = cmd.change
        changed = replace(
            state,
            title=change.title if change.title is not None else state.title,
            notes=change.notes if change.notes is not None else state.notes,
            updated_at=now,
        )
        if change.answer is not None:
            tree = await uow.trees.get(
                account_id=cmd.account_id, tree_id=state.tree_id, version=state.tree_version, live_only=False
            )
            if tree is None:  # the session's version is kept by a foreign key: only a broken database gets here
                raise TreeNotFound()
            nodes = node_index(tree.nodes)
            answer = change.answer
            target = follow_option(nodes, state.current_node_id, answer.node_id, answer.option_label)
            changed = replace(changed, current_node_id=target.id)
            entry = StepCreate(
                kind="answer", content=answer_text(nodes[answer.node_id], answer.option_label), node_id=answer.node_id
            )
            await record_step(
                uow, state, entry, user_id=cmd.user_id, at=now, option_label=answer.option_label, next_node_id=target.id
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
                outcome=cmd.completion.outcome,
                summary=cmd.completion.summary or None,
                completed_at=now,
                completed_by=cmd.user_id,
                updated_at=now,
            )
        )
        uow.collect(
            SessionCompleted(
                **event_fields(state, now),
                completed_at=now,
                outcome=cmd.completion.outcome,
            )
        )
        return await _read(uow, account_id=cmd.account_id, session_id=state.id)


async def get_session(*, db: Database, account_id: UUID, session_id: UUID) -> SessionRead:
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        return await _read(uow, account_id=account_id, session_id=session_id)


async def list_sessions(
    *, db: Database, account_id: UUID, where: SessionFilter, limit: int, offset: int
) -> SessionPage:
    """The account's sessions (or one user's: `where.started_by`), newest first."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        states, total = await uow.sessions.page(account_id=account_id, where=where, limit=limit, offset=offset)
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
        tree=ExportedTree.model_validate(tree, from_attributes=True),
        path=export_path(tree, steps),
        steps=steps,
        outcome=session.outcome,
        summary=session.summary,
        completed_at=session.completed_at,
    )
