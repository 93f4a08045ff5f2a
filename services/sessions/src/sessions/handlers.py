"""Use cases of the sessions service: one function per command or query, given a unit of work or a session."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from rf_contracts import HandoffEvent, SessionCompleted, SessionStarted, StepCreated
from rf_contracts.api.sessions import (
    Escalation,
    ExportedTree,
    PathEntry,
    SessionComplete,
    SessionCreate,
    SessionExport,
    SessionPage,
    SessionRead,
    SessionUpdate,
    StepCreate,
    StepPage,
    StepRead,
    readable_context,
)
from rf_contracts.api.trees import (
    TreeCategory,
    TreeCreate,
    TreeNode,
    TreePage,
    TreeRead,
    TreeReplace,
    TreeSearchHit,
    TreeSearchPage,
    TreeSummary,
)
from rfkit.auth import Principal
from rfkit.db import UnitOfWork
from rfkit.errors import Invalid
from rfkit.etags import IfMatch, micros, strong_etag
from sessions import repository as repo
from sessions.domain import (
    apply_handoff_event,
    current_escalation,
    ensure_active,
    follow_option,
    node_index,
    validate_tree,
)


def utcnow() -> datetime:
    """Server time for every stored timestamp: UTC with microseconds."""
    return datetime.now(UTC)


def tree_etag(tree_id: UUID, version: int) -> str:
    """A tree version's strong ETag: every replacement makes a new version."""
    return strong_etag("t", tree_id, version)


def session_etag(session_id: UUID, updated_at: datetime) -> str:
    """A session's strong ETag: every write through the API moves updated_at forward (see _next_write)."""
    return strong_etag("s", session_id, micros(updated_at))


def _next_write(previous: datetime) -> datetime:
    """The time of a write to a locked session: strictly after the last one, so its ETag always changes."""
    return max(utcnow(), previous + timedelta(microseconds=1))


# --- trees -------------------------------------------------------------------------------------------------


def _tree_fields(body: TreeCreate) -> tuple[dict[str, Any], dict[str, Any]]:
    """(searchable head columns, version columns) of a validated tree."""
    validate_tree(body.root_node_id, body.nodes)
    common = {"title": body.title, "description": body.description, "category": body.category, "tags": body.tags}
    node_text = "\n".join(
        " ".join([n.text, *(o.label for o in n.options)]) for n in body.nodes
    )
    head = {**common, "node_count": len(body.nodes), "tags_text": " ".join(body.tags), "node_text": node_text}
    version = {**common, "root_node_id": body.root_node_id, "nodes": [n.model_dump() for n in body.nodes]}
    return head, version


async def create_tree(uow: UnitOfWork, *, actor: Principal, body: TreeCreate) -> TreeRead:
    """Create a tree at version 1."""
    head, version = _tree_fields(body)
    tree_id, now = uuid.uuid4(), utcnow()
    owner = {"account_id": actor.account_id, "created_by": actor.user_id, "created_at": now}
    await repo.insert_tree(
        uow.session,
        head={**head, **owner, "id": tree_id, "version": 1, "updated_at": now},
        version={**version, **owner, "tree_id": tree_id, "version": 1},
    )
    return await get_tree(uow.session, account_id=actor.account_id, tree_id=tree_id)


async def replace_tree(
    uow: UnitOfWork, *, actor: Principal, tree_id: UUID, body: TreeReplace, if_match: IfMatch | None = None
) -> TreeRead:
    """Write the next version of a tree; sessions already running stay on theirs.

    If-Match is compared under the head's row lock: of concurrent replacements naming the same version, the
    first to get the lock writes and the others then see the new version and get 412.
    """
    current = await repo.lock_tree(uow.session, account_id=actor.account_id, tree_id=tree_id)
    if if_match is not None:
        if_match.check(tree_etag(tree_id, current.version))
    head, version = _tree_fields(body)
    number, now = current.version + 1, utcnow()
    await repo.replace_tree(
        uow.session,
        tree_id=tree_id,
        head={**head, "version": number, "updated_at": now},
        version={
            **version,
            "tree_id": tree_id,
            "version": number,
            "account_id": actor.account_id,
            "created_by": actor.user_id,
            "created_at": now,
        },
    )
    return await get_tree(uow.session, account_id=actor.account_id, tree_id=tree_id)


async def delete_tree(uow: UnitOfWork, *, actor: Principal, tree_id: UUID) -> None:
    """Soft delete: the tree leaves lists and search; its versions stay for the sessions that used them."""
    await repo.soft_delete_tree(uow.session, account_id=actor.account_id, tree_id=tree_id, at=utcnow())


def _tree_read(row: Row[Any]) -> TreeRead:
    nodes = [TreeNode.model_validate(n) for n in row.nodes]
    return TreeRead(
        id=row.tree_id,
        account_id=row.account_id,
        version=row.version,
        title=row.title,
        description=row.description,
        category=row.category,
        tags=list(row.tags),
        node_count=len(nodes),
        created_by=row.created_by,
        created_at=row.tree_created_at,
        updated_at=row.created_at,
        root_node_id=row.root_node_id,
        nodes=nodes,
    )


async def get_tree(db: AsyncSession, *, account_id: UUID, tree_id: UUID, version: int | None = None) -> TreeRead:
    """The latest version of a live tree, or the given version."""
    return _tree_read(await repo.get_tree_version(db, account_id=account_id, tree_id=tree_id, version=version))


def _summary_fields(row: Row[Any]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in TreeSummary.model_fields}


async def list_trees(
    db: AsyncSession, *, account_id: UUID, category: str | None, limit: int, offset: int
) -> TreePage:
    rows, total = await repo.list_trees(db, account_id=account_id, category=category, limit=limit, offset=offset)
    return TreePage(
        items=[TreeSummary(**_summary_fields(r)) for r in rows], total=total, limit=limit, offset=offset
    )


async def tree_categories(db: AsyncSession, *, account_id: UUID) -> list[TreeCategory]:
    rows = await repo.tree_categories(db, account_id=account_id)
    return [TreeCategory(category=r.category, count=r.count) for r in rows]


async def search_trees(
    db: AsyncSession, *, account_id: UUID, q: str, category: str | None, limit: int, offset: int
) -> TreeSearchPage:
    rows, total = await repo.search_trees(
        db, account_id=account_id, q=q, category=category, limit=limit, offset=offset
    )
    items = [TreeSearchHit(**_summary_fields(r), rank=float(r.rank)) for r in rows]
    return TreeSearchPage(query=q, items=items, total=total, limit=limit, offset=offset)


# --- sessions ----------------------------------------------------------------------------------------------


def _escalation(views: Sequence[repo.HandoffView]) -> Escalation | None:
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


async def _session_reads(db: AsyncSession, *, account_id: UUID, rows: Sequence[Row[Any]]) -> list[SessionRead]:
    versions = await repo.tree_versions_of(db, account_id=account_id, keys={(r.tree_id, r.tree_version) for r in rows})
    views = await repo.handoff_views(db, account_id=account_id, session_ids=[r.id for r in rows])
    reads = []
    for row in rows:
        tree = versions[(row.tree_id, row.tree_version)]
        node = next(n for n in tree.nodes if n["id"] == row.current_node_id)
        reads.append(
            SessionRead(
                id=row.id,
                account_id=row.account_id,
                tree_id=row.tree_id,
                tree_version=row.tree_version,
                tree_title=tree.title,
                title=row.title,
                context=readable_context(row.context),
                notes=row.notes,
                status=row.status,
                current_node_id=row.current_node_id,
                current_node=TreeNode.model_validate(node),
                started_by=row.started_by,
                started_at=row.started_at,
                updated_at=row.updated_at,
                completed_at=row.completed_at,
                completed_by=row.completed_by,
                outcome=row.outcome,
                summary=row.summary,
                escalation=_escalation(views.get(row.id, [])),
            )
        )
    return reads


async def get_session(db: AsyncSession, *, account_id: UUID, session_id: UUID) -> SessionRead:
    row = await repo.get_session(db, account_id=account_id, session_id=session_id)
    return (await _session_reads(db, account_id=account_id, rows=[row]))[0]


async def list_sessions(
    db: AsyncSession,
    *,
    account_id: UUID,
    started_by: UUID | None,
    status: str | None,
    tree_id: UUID | None,
    limit: int,
    offset: int,
) -> SessionPage:
    rows, total = await repo.list_sessions(
        db, account_id=account_id, started_by=started_by, status=status, tree_id=tree_id, limit=limit, offset=offset
    )
    items = await _session_reads(db, account_id=account_id, rows=rows)
    return SessionPage(items=items, total=total, limit=limit, offset=offset)


async def start_session(uow: UnitOfWork, *, actor: Principal, body: SessionCreate) -> SessionRead:
    """Start on the latest version of a live tree, at its root; publishes session.started."""
    tree = await repo.get_tree_version(uow.session, account_id=actor.account_id, tree_id=body.tree_id)
    session_id, now = uuid.uuid4(), utcnow()
    await repo.insert_session(
        uow.session,
        {
            "id": session_id,
            "account_id": actor.account_id,
            "tree_id": body.tree_id,
            "tree_version": tree.version,
            "title": body.title or tree.title,
            "context": body.context,
            "notes": "",
            "status": "active",
            "current_node_id": tree.root_node_id,
            "started_by": actor.user_id,
            "started_at": now,
            "updated_at": now,
        },
    )
    await uow.publish(
        SessionStarted(
            event_id=uuid.uuid4(),
            occurred_at=now,
            account_id=actor.account_id,
            session_id=session_id,
            tree_id=body.tree_id,
            tree_version=tree.version,
            started_by=actor.user_id,
            started_at=now,
        )
    )
    return await get_session(uow.session, account_id=actor.account_id, session_id=session_id)


async def _record_step(
    uow: UnitOfWork,
    *,
    actor: Principal,
    session_id: UUID,
    kind: str,
    content: str,
    actor_type: str,
    node_id: str | None = None,
    option_label: str | None = None,
    next_node_id: str | None = None,
    at: datetime,
) -> StepRead:
    """Write a step and its session.step_created event.

    actor_id: the principal for human steps; null for the assistant's (ai) steps, whose author is not a
    person. Who typed an ai step in is kept as `recorded_by` on the step (API only, not in the event).
    """
    step = {
        "id": uuid.uuid4(),
        "session_id": session_id,
        "account_id": actor.account_id,
        "kind": kind,
        "content": content,
        "node_id": node_id,
        "option_label": option_label,
        "next_node_id": next_node_id,
        "actor_type": actor_type,
        "actor_id": actor.user_id if actor_type == "human" else None,
        "recorded_by": actor.user_id,
        "created_at": at,
    }
    await repo.insert_step(uow.session, step)
    await uow.publish(
        StepCreated(
            event_id=uuid.uuid4(),
            occurred_at=at,
            account_id=actor.account_id,
            session_id=session_id,
            step_id=step["id"],
            created_at=at,
            kind=kind,  # type: ignore[arg-type]
            actor_type=actor_type,  # type: ignore[arg-type]
            actor_id=step["actor_id"],
        )
    )
    return StepRead(**step)


async def update_session(
    uow: UnitOfWork, *, actor: Principal, session_id: UUID, body: SessionUpdate, if_match: IfMatch | None = None
) -> SessionRead:
    """Change title and notes, and/or follow an option of the current node (recorded as an answer step).

    If-Match is compared under the session's row lock, so of concurrent writes naming one ETag only one wins.
    """
    row = await repo.get_session(uow.session, account_id=actor.account_id, session_id=session_id, lock=True)
    if if_match is not None:
        if_match.check(session_etag(session_id, row.updated_at))
    ensure_active(row.status)
    now = _next_write(row.updated_at)
    changes: dict[str, Any] = {"updated_at": now}
    if body.title is not None:
        changes["title"] = body.title
    if body.notes is not None:
        changes["notes"] = body.notes
    if body.answer is not None:
        tree = await repo.get_tree_version(
            uow.session, account_id=actor.account_id, tree_id=row.tree_id, version=row.tree_version, live_only=False
        )
        nodes = node_index([TreeNode.model_validate(n) for n in tree.nodes])
        answer = body.answer
        target = follow_option(nodes, row.current_node_id, answer.node_id, answer.option_label)
        changes["current_node_id"] = target.id
        await _record_step(
            uow,
            actor=actor,
            session_id=session_id,
            kind="answer",
            content=f"{nodes[answer.node_id].text} → {answer.option_label}",
            actor_type="human",
            node_id=answer.node_id,
            option_label=answer.option_label,
            next_node_id=target.id,
            at=now,
        )
    await repo.update_session(uow.session, session_id=session_id, values=changes)
    return await get_session(uow.session, account_id=actor.account_id, session_id=session_id)


async def add_step(uow: UnitOfWork, *, actor: Principal, session_id: UUID, body: StepCreate) -> StepRead:
    """Add a journal entry to an active session; publishes session.step_created."""
    row = await repo.get_session(uow.session, account_id=actor.account_id, session_id=session_id, lock=True)
    ensure_active(row.status)
    if body.node_id is not None:
        tree = await repo.get_tree_version(
            uow.session, account_id=actor.account_id, tree_id=row.tree_id, version=row.tree_version, live_only=False
        )
        if all(n["id"] != body.node_id for n in tree.nodes):
            raise Invalid(f"node {body.node_id!r} is not a node of this session's tree")
    now = _next_write(row.updated_at)
    step = await _record_step(
        uow,
        actor=actor,
        session_id=session_id,
        kind=body.kind,
        content=body.content,
        actor_type=body.actor_type,
        node_id=body.node_id,
        at=now,
    )
    await repo.update_session(uow.session, session_id=session_id, values={"updated_at": now})
    return step


async def complete_session(
    uow: UnitOfWork, *, actor: Principal, session_id: UUID, body: SessionComplete
) -> SessionRead:
    """Close the session with an outcome (409 when it is already closed); publishes session.completed."""
    row = await repo.get_session(uow.session, account_id=actor.account_id, session_id=session_id, lock=True)
    ensure_active(row.status)
    now = _next_write(row.updated_at)
    await repo.update_session(
        uow.session,
        session_id=session_id,
        values={
            "status": "completed",
            "outcome": body.outcome,
            "summary": body.summary or None,
            "completed_at": now,
            "completed_by": actor.user_id,
            "updated_at": now,
        },
    )
    await uow.publish(
        SessionCompleted(
            event_id=uuid.uuid4(),
            occurred_at=now,
            account_id=actor.account_id,
            session_id=session_id,
            completed_at=now,
            outcome=body.outcome,
        )
    )
    return await get_session(uow.session, account_id=actor.account_id, session_id=session_id)


def _step_read(row: Row[Any]) -> StepRead:
    return StepRead(**{name: getattr(row, name) for name in StepRead.model_fields})


async def list_steps(db: AsyncSession, *, account_id: UUID, session_id: UUID, limit: int, offset: int) -> StepPage:
    await repo.get_session(db, account_id=account_id, session_id=session_id)
    rows, total = await repo.list_steps(db, account_id=account_id, session_id=session_id, limit=limit, offset=offset)
    return StepPage(items=[_step_read(r) for r in rows], total=total, limit=limit, offset=offset)


async def export_session(db: AsyncSession, *, account_id: UUID, session_id: UUID) -> SessionExport:
    """The session, the path it took through its tree version, every step and the outcome, as one document."""
    session = await get_session(db, account_id=account_id, session_id=session_id)
    tree = await repo.get_tree_version(
        db, account_id=account_id, tree_id=session.tree_id, version=session.tree_version, live_only=False
    )
    nodes = node_index([TreeNode.model_validate(n) for n in tree.nodes])
    rows, _ = await repo.list_steps(db, account_id=account_id, session_id=session_id)
    steps = [_step_read(r) for r in rows]
    path: list[PathEntry] = []
    at = tree.root_node_id
    for step in steps:
        if step.next_node_id is None or step.node_id is None:
            continue
        node = nodes[step.node_id]
        path.append(
            PathEntry(
                node_id=node.id,
                kind=node.kind,
                text=node.text,
                option_label=step.option_label,
                answered_at=step.created_at,
                answered_by=step.actor_id,
            )
        )
        at = step.next_node_id
    last = nodes[at]
    path.append(
        PathEntry(
            node_id=last.id, kind=last.kind, text=last.text, option_label=None, answered_at=None, answered_by=None
        )
    )
    return SessionExport(
        exported_at=utcnow(),
        session=session,
        tree=ExportedTree(id=tree.tree_id, version=tree.version, title=tree.title, category=tree.category),
        path=path,
        steps=steps,
        outcome=session.outcome,
        summary=session.summary,
        completed_at=session.completed_at,
    )


# --- handoff events ----------------------------------------------------------------------------------------


async def apply_handoff_events(uow: UnitOfWork, events: Sequence[HandoffEvent]) -> None:
    """Fold handoff events into each session's escalation view; stale versions change nothing they should not."""
    for event in events:
        view = await repo.lock_handoff_view(uow.session, handoff_id=event.handoff_id)
        await repo.save_handoff_view(uow.session, apply_handoff_event(view, event))
