"""Trees and their versions in PostgreSQL: heads for lists and search, versions for sessions."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from rf_contracts.api.trees import TreeCategory, TreeRead, TreeSearchHit, TreeSummary
from rfkit.db import page_of
from sessions.repository.tables import SEARCH_CONFIG, tree_versions, trees


def _live(account_id: UUID, tree_id: UUID) -> Any:
    return sa.and_(trees.c.id == tree_id, trees.c.account_id == account_id, trees.c.deleted_at.is_(None))


def _searchable(tree: TreeRead) -> dict[str, Any]:
    """The head's columns of a version: what lists show and what full-text search indexes."""
    node_text = "\n".join(" ".join([n.text, *(o.label for o in n.options)]) for n in tree.nodes)
    return {
        "version": tree.version,
        "title": tree.title,
        "description": tree.description,
        "category": tree.category,
        "tags": tree.tags,
        "node_count": tree.node_count,
        "tags_text": " ".join(tree.tags),
        "node_text": node_text,
        "updated_at": tree.updated_at,
    }


def _version_row(tree: TreeRead) -> dict[str, Any]:
    """A version's row: its fields by column name, but for the two the table names from the version's side."""
    fields = tree.model_dump(include={c.name for c in tree_versions.columns})
    return fields | {"tree_id": tree.id, "created_at": tree.updated_at}


def _tree_read(row: Any) -> TreeRead:
    """A version row (with its tree's `tree_created_at`) as the API answers it: `created_at` of the tree (its
    version 1), `updated_at` of this version."""
    renamed = {"id": row.tree_id, "created_at": row.tree_created_at, "updated_at": row.created_at}
    return TreeRead.model_validate({**row._mapping, **renamed, "node_count": len(row.nodes)})


def _summary_fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in TreeSummary.model_fields}


class TreeRepository:
    """The account's trees: each a head (its latest version's searchable fields) and its immutable versions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, tree: TreeRead) -> None:
        """A new tree at its first version."""
        await self.session.execute(
            sa.insert(trees).values(
                id=tree.id,
                account_id=tree.account_id,
                created_by=tree.created_by,
                created_at=tree.created_at,
                **_searchable(tree),
            )
        )
        await self.session.execute(sa.insert(tree_versions).values(**_version_row(tree)))

    async def add_version(self, tree: TreeRead) -> None:
        """The next version of a tree (its head locked by `lock_version`): the head now shows it."""
        await self.session.execute(
            sa.update(trees)
            .where(trees.c.id == tree.id, trees.c.account_id == tree.account_id)
            .values(**_searchable(tree))
        )
        await self.session.execute(sa.insert(tree_versions).values(**_version_row(tree)))

    async def lock_version(self, *, account_id: UUID, tree_id: UUID) -> int | None:
        """The live tree's latest version number, its head locked so concurrent replacements get consecutive ones;
        None when there is no such live tree."""
        stmt = sa.select(trees.c.version).where(_live(account_id, tree_id)).with_for_update()
        version: int | None = await self.session.scalar(stmt)
        return version

    async def soft_delete(self, *, account_id: UUID, tree_id: UUID, at: datetime) -> bool:
        """Mark the live tree deleted; False when there was none."""
        result = await self.session.execute(sa.update(trees).where(_live(account_id, tree_id)).values(deleted_at=at))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(
        self, *, account_id: UUID, tree_id: UUID, version: int | None = None, live_only: bool = True
    ) -> TreeRead | None:
        """A version of a tree (its latest by default); `live_only=False` also finds versions of deleted trees."""
        cond = [trees.c.id == tree_id, trees.c.account_id == account_id]
        if live_only:
            cond.append(trees.c.deleted_at.is_(None))
        stmt = (
            sa.select(tree_versions, trees.c.created_at.label("tree_created_at"))
            .join(trees, trees.c.id == tree_versions.c.tree_id)
            .where(*cond)
            .where(tree_versions.c.version == (version if version is not None else trees.c.version))
        )
        row = (await self.session.execute(stmt)).first()
        return _tree_read(row) if row is not None else None

    async def versions(
        self, *, account_id: UUID, keys: Collection[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], TreeRead]:
        """The given (tree id, version)s, deleted trees included: sessions keep their history."""
        if not keys:
            return {}
        stmt = (
            sa.select(tree_versions, trees.c.created_at.label("tree_created_at"))
            .join(trees, trees.c.id == tree_versions.c.tree_id)
            .where(
                tree_versions.c.account_id == account_id,
                sa.tuple_(tree_versions.c.tree_id, tree_versions.c.version).in_(list(keys)),
            )
        )
        rows = (await self.session.execute(stmt)).all()
        return {(r.tree_id, r.version): _tree_read(r) for r in rows}

    async def page(
        self, *, account_id: UUID, category: str | None, limit: int, offset: int
    ) -> tuple[list[TreeSummary], int]:
        """The live trees by title, and how many there are."""
        cond = [trees.c.account_id == account_id, trees.c.deleted_at.is_(None)]
        if category is not None:
            cond.append(trees.c.category == category)
        rows, total = await page_of(
            self.session, trees, cond, order_by=(sa.func.lower(trees.c.title), trees.c.id), limit=limit, offset=offset
        )
        return [TreeSummary(**_summary_fields(r)) for r in rows], total

    async def categories(self, *, account_id: UUID) -> list[TreeCategory]:
        stmt = (
            sa.select(trees.c.category, sa.func.count().label("count"))
            .where(trees.c.account_id == account_id, trees.c.deleted_at.is_(None))
            .group_by(trees.c.category)
            .order_by(trees.c.category)
        )
        return [TreeCategory(category=r.category, count=r.count) for r in (await self.session.execute(stmt)).all()]

    async def search(
        self, *, account_id: UUID, q: str, category: str | None, limit: int, offset: int
    ) -> tuple[list[TreeSearchHit], int]:
        """Ranked full-text search (websearch syntax: words, "phrases", OR, -word) over the latest versions."""
        query = sa.func.websearch_to_tsquery(sa.literal_column(f"'{SEARCH_CONFIG}'::regconfig"), q)
        cond = [trees.c.account_id == account_id, trees.c.deleted_at.is_(None), trees.c.search.bool_op("@@")(query)]
        if category is not None:
            cond.append(trees.c.category == category)
        rank = sa.func.ts_rank(trees.c.search, query).label("rank")
        rows, total = await page_of(
            self.session, trees, cond, columns=(trees, rank),
            order_by=(rank.desc(), trees.c.updated_at.desc(), trees.c.id), limit=limit, offset=offset,
        )
        return [TreeSearchHit(**_summary_fields(r), rank=float(r.rank)) for r in rows], total
