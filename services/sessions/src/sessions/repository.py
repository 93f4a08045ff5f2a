"""Tables of the sessions service and the queries on them; every query is scoped by account_id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from rfkit.errors import NotFound
from sessions.domain import HandoffView

# The migrations build these tables; tests/test_schema_matches_metadata.py checks that they agree.
metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

# Full-text configuration: English stemming; title weighs A, description and tags B, node text C.
SEARCH_CONFIG = "english"
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '') || ' ' || coalesce(tags_text, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(node_text, '')), 'C')"
)

# The head of each tree: its latest version's searchable fields. Versions themselves live in tree_versions.
trees = sa.Table(
    "trees",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False),
    sa.Column("node_count", sa.Integer, nullable=False),
    sa.Column("tags_text", sa.Text, nullable=False),
    sa.Column("node_text", sa.Text, nullable=False),
    sa.Column("search", TSVECTOR, sa.Computed(SEARCH_VECTOR_SQL, persisted=True)),
    sa.Column("created_by", sa.Uuid, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("deleted_at", TS),
    sa.Index(
        "ix_trees_account_category_live", "account_id", "category", postgresql_where=sa.text("deleted_at IS NULL")
    ),
    sa.Index("ix_trees_search", "search", postgresql_using="gin"),
)

tree_versions = sa.Table(
    "tree_versions",
    metadata,
    sa.Column("tree_id", sa.Uuid, sa.ForeignKey("trees.id"), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False),
    sa.Column("root_node_id", sa.Text, nullable=False),
    sa.Column("nodes", JSONB, nullable=False),
    sa.Column("created_by", sa.Uuid, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("tree_id", sa.Uuid, nullable=False),
    sa.Column("tree_version", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("context", JSONB),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("current_node_id", sa.Text, nullable=False),
    sa.Column("started_by", sa.Uuid, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("completed_at", TS),
    sa.Column("completed_by", sa.Uuid),
    sa.Column("outcome", sa.Text),
    sa.Column("summary", sa.Text),
    sa.ForeignKeyConstraint(["tree_id", "tree_version"], ["tree_versions.tree_id", "tree_versions.version"]),
    sa.CheckConstraint("status IN ('active', 'completed')", name="ck_sessions_status"),
    sa.CheckConstraint("outcome IS NULL OR outcome IN ('resolved', 'unresolved')", name="ck_sessions_outcome"),
    sa.Index("ix_sessions_account_started", "account_id", sa.text("started_at DESC")),
    sa.Index("ix_sessions_account_user_started", "account_id", "started_by", sa.text("started_at DESC")),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # Ties on created_at (same microsecond) keep insertion order.
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column("session_id", sa.Uuid, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("node_id", sa.Text),
    sa.Column("option_label", sa.Text),
    sa.Column("next_node_id", sa.Text),
    sa.Column("actor_type", sa.Text, nullable=False),
    sa.Column("actor_id", sa.Uuid),
    sa.Column("recorded_by", sa.Uuid, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.CheckConstraint("kind IN ('answer', 'action', 'note', 'suggestion')", name="ck_steps_kind"),
    sa.CheckConstraint("actor_type IN ('human', 'ai')", name="ck_steps_actor_type"),
    sa.Index("ix_steps_session_created", "session_id", "created_at", "seq"),
)

# One row per handoff of a session, built from handoff events (see domain.HandoffView).
session_escalations = sa.Table(
    "session_escalations",
    metadata,
    sa.Column("handoff_id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("session_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("status_at", TS, nullable=False),
    sa.Column("claim_version", sa.BigInteger),
    sa.Column("claimed_by", sa.Uuid),
    sa.Column("claimed_at", TS),
    sa.Column("release_version", sa.BigInteger),
    sa.Index("ix_session_escalations_session", "account_id", "session_id"),
)


# --- trees -------------------------------------------------------------------------------------------------


def _live_tree(account_id: UUID, tree_id: UUID) -> Any:
    return sa.and_(trees.c.id == tree_id, trees.c.account_id == account_id, trees.c.deleted_at.is_(None))


async def insert_tree(db: AsyncSession, *, head: dict[str, Any], version: dict[str, Any]) -> None:
    await db.execute(sa.insert(trees).values(**head))
    await db.execute(sa.insert(tree_versions).values(**version))


async def lock_tree(db: AsyncSession, *, account_id: UUID, tree_id: UUID) -> Row[Any]:
    """The live tree's head, locked so that concurrent replacements get consecutive versions."""
    row = (await db.execute(sa.select(trees).where(_live_tree(account_id, tree_id)).with_for_update())).first()
    if row is None:
        raise NotFound("tree not found")
    return row


async def replace_tree(db: AsyncSession, *, tree_id: UUID, head: dict[str, Any], version: dict[str, Any]) -> None:
    await db.execute(sa.update(trees).where(trees.c.id == tree_id).values(**head))
    await db.execute(sa.insert(tree_versions).values(**version))


async def soft_delete_tree(db: AsyncSession, *, account_id: UUID, tree_id: UUID, at: datetime) -> None:
    result = await db.execute(sa.update(trees).where(_live_tree(account_id, tree_id)).values(deleted_at=at))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("tree not found")


async def get_tree_version(
    db: AsyncSession, *, account_id: UUID, tree_id: UUID, version: int | None = None, live_only: bool = True
) -> Row[Any]:
    """A version of a tree (its latest by default) joined with the head's node_count and created_at."""
    cond = [trees.c.id == tree_id, trees.c.account_id == account_id]
    if live_only:
        cond.append(trees.c.deleted_at.is_(None))
    stmt = (
        sa.select(
            tree_versions,
            trees.c.created_at.label("tree_created_at"),
        )
        .join(trees, trees.c.id == tree_versions.c.tree_id)
        .where(*cond)
        .where(tree_versions.c.version == (version if version is not None else trees.c.version))
    )
    row = (await db.execute(stmt)).first()
    if row is None:
        raise NotFound("tree not found" if version is None else f"tree version {version} not found")
    return row


async def list_trees(
    db: AsyncSession, *, account_id: UUID, category: str | None, limit: int, offset: int
) -> tuple[list[Row[Any]], int]:
    cond = [trees.c.account_id == account_id, trees.c.deleted_at.is_(None)]
    if category is not None:
        cond.append(trees.c.category == category)
    total = await db.scalar(sa.select(sa.func.count()).select_from(trees).where(*cond))
    rows = (
        await db.execute(
            sa.select(trees).where(*cond).order_by(sa.func.lower(trees.c.title), trees.c.id).limit(limit).offset(offset)
        )
    ).all()
    return list(rows), int(total or 0)


async def tree_categories(db: AsyncSession, *, account_id: UUID) -> list[Row[Any]]:
    stmt = (
        sa.select(trees.c.category, sa.func.count().label("count"))
        .where(trees.c.account_id == account_id, trees.c.deleted_at.is_(None))
        .group_by(trees.c.category)
        .order_by(trees.c.category)
    )
    return list((await db.execute(stmt)).all())


async def search_trees(
    db: AsyncSession, *, account_id: UUID, q: str, category: str | None, limit: int, offset: int
) -> tuple[list[Row[Any]], int]:
    """Ranked full-text search (websearch syntax: words, "phrases", OR, -word) over the latest versions."""
    query = sa.func.websearch_to_tsquery(sa.literal_column(f"'{SEARCH_CONFIG}'::regconfig"), q)
    cond = [trees.c.account_id == account_id, trees.c.deleted_at.is_(None), trees.c.search.bool_op("@@")(query)]
    if category is not None:
        cond.append(trees.c.category == category)
    rank = sa.func.ts_rank(trees.c.search, query).label("rank")
    total = await db.scalar(sa.select(sa.func.count()).select_from(trees).where(*cond))
    rows = (
        await db.execute(
            sa.select(trees, rank)
            .where(*cond)
            .order_by(rank.desc(), trees.c.updated_at.desc(), trees.c.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return list(rows), int(total or 0)


# --- sessions ----------------------------------------------------------------------------------------------


async def insert_session(db: AsyncSession, values: dict[str, Any]) -> None:
    await db.execute(sa.insert(sessions).values(**values))


async def get_session(db: AsyncSession, *, account_id: UUID, session_id: UUID, lock: bool = False) -> Row[Any]:
    stmt = sa.select(sessions).where(sessions.c.id == session_id, sessions.c.account_id == account_id)
    if lock:
        # Answers and completion read-modify-write the session: one at a time per session.
        stmt = stmt.with_for_update()
    row = (await db.execute(stmt)).first()
    if row is None:
        raise NotFound("session not found")
    return row


async def update_session(db: AsyncSession, *, session_id: UUID, values: dict[str, Any]) -> None:
    await db.execute(sa.update(sessions).where(sessions.c.id == session_id).values(**values))


async def list_sessions(
    db: AsyncSession,
    *,
    account_id: UUID,
    started_by: UUID | None,
    status: str | None,
    tree_id: UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Row[Any]], int]:
    cond = [sessions.c.account_id == account_id]
    if started_by is not None:
        cond.append(sessions.c.started_by == started_by)
    if status is not None:
        cond.append(sessions.c.status == status)
    if tree_id is not None:
        cond.append(sessions.c.tree_id == tree_id)
    total = await db.scalar(sa.select(sa.func.count()).select_from(sessions).where(*cond))
    rows = (
        await db.execute(
            sa.select(sessions)
            .where(*cond)
            .order_by(sessions.c.started_at.desc(), sessions.c.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return list(rows), int(total or 0)


async def tree_versions_of(
    db: AsyncSession, *, account_id: UUID, keys: set[tuple[UUID, int]]
) -> dict[tuple[UUID, int], Row[Any]]:
    """The tree versions the given sessions run on (deleted trees included: sessions keep their history)."""
    if not keys:
        return {}
    stmt = sa.select(tree_versions).where(
        tree_versions.c.account_id == account_id,
        sa.tuple_(tree_versions.c.tree_id, tree_versions.c.version).in_(list(keys)),
    )
    return {(r.tree_id, r.version): r for r in (await db.execute(stmt)).all()}


# --- steps -------------------------------------------------------------------------------------------------


async def insert_step(db: AsyncSession, values: dict[str, Any]) -> None:
    await db.execute(sa.insert(steps).values(**values))


async def list_steps(
    db: AsyncSession, *, account_id: UUID, session_id: UUID, limit: int | None = None, offset: int = 0
) -> tuple[list[Row[Any]], int]:
    cond = [steps.c.session_id == session_id, steps.c.account_id == account_id]
    total = await db.scalar(sa.select(sa.func.count()).select_from(steps).where(*cond))
    stmt = sa.select(steps).where(*cond).order_by(steps.c.created_at, steps.c.seq).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await db.execute(stmt)).all()), int(total or 0)


# --- escalations -------------------------------------------------------------------------------------------


def _view(row: Row[Any]) -> HandoffView:
    return HandoffView(**{c.name: getattr(row, c.name) for c in session_escalations.columns})


async def lock_handoff_view(db: AsyncSession, *, handoff_id: UUID) -> HandoffView | None:
    """The handoff's view, with a lock held to commit that also covers a view not yet written."""
    await db.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(str(handoff_id), 0))))
    row = (
        await db.execute(
            sa.select(session_escalations).where(session_escalations.c.handoff_id == handoff_id).with_for_update()
        )
    ).first()
    return _view(row) if row is not None else None


async def save_handoff_view(db: AsyncSession, view: HandoffView) -> None:
    values = {c.name: getattr(view, c.name) for c in session_escalations.columns}
    stmt = insert(session_escalations).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[session_escalations.c.handoff_id],
        set_={k: stmt.excluded[k] for k in values if k != "handoff_id"},
    )
    await db.execute(stmt)


async def handoff_views(
    db: AsyncSession, *, account_id: UUID, session_ids: Sequence[UUID]
) -> dict[UUID, list[HandoffView]]:
    if not session_ids:
        return {}
    stmt = sa.select(session_escalations).where(
        session_escalations.c.account_id == account_id, session_escalations.c.session_id.in_(list(session_ids))
    )
    found: dict[UUID, list[HandoffView]] = {}
    for row in (await db.execute(stmt)).all():
        found.setdefault(row.session_id, []).append(_view(row))
    return found
