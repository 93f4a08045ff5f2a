"""Use cases of decision trees: create, replace (a new version), soft delete, read, list and search."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from rf_contracts.api.trees import TreeCategory, TreeCreate, TreePage, TreeRead, TreeSearchPage
from rfkit.clock import utcnow
from rfkit.db import Database
from rfkit.etags import IfMatch, strong_etag
from sessions.domain import TreeNotFound, TreeVersionNotFound, validate_tree
from sessions.uow import SessionsUnitOfWork


def tree_etag(tree_id: UUID, version: int) -> str:
    """A tree version's strong ETag: every replacement makes a new version."""
    return strong_etag("t", tree_id, version)


@dataclass(frozen=True)
class CreateTree:
    account_id: UUID
    user_id: UUID
    tree: TreeCreate


@dataclass(frozen=True)
class ReplaceTree:
    account_id: UUID
    user_id: UUID
    tree_id: UUID
    tree: TreeCreate
    if_match: IfMatch | None = None


@dataclass(frozen=True)
class DeleteTree:
    account_id: UUID
    tree_id: UUID


def _version(
    body: TreeCreate, *, tree_id: UUID, account_id: UUID, user_id: UUID, version: int, at: datetime
) -> TreeRead:
    """A validated tree as a new version written at `at`; the tree's `created_at` is `at` too, written only for
    version 1 (when the tree is created)."""
    validate_tree(body.root_node_id, body.nodes)
    return TreeRead(
        id=tree_id,
        account_id=account_id,
        version=version,
        node_count=len(body.nodes),
        created_by=user_id,
        created_at=at,
        updated_at=at,
        **dict(body),
    )


async def create_tree(cmd: CreateTree, *, db: Database) -> TreeRead:
    """Create a tree at version 1."""
    tree = _version(
        cmd.tree, tree_id=uuid.uuid4(), account_id=cmd.account_id, user_id=cmd.user_id, version=1, at=utcnow()
    )
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        await uow.trees.add(tree)
        return await _get(uow, account_id=cmd.account_id, tree_id=tree.id)


async def replace_tree(cmd: ReplaceTree, *, db: Database) -> TreeRead:
    """Write the next version of a tree; sessions already running stay on theirs.

    If-Match is compared under the head's row lock: of concurrent replacements naming the same version, the
    first to get the lock writes and the others then see the new version and get 412.
    """
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        current = await uow.trees.lock_version(account_id=cmd.account_id, tree_id=cmd.tree_id)
        if current is None:
            raise TreeNotFound()
        if cmd.if_match is not None:
            cmd.if_match.check(tree_etag(cmd.tree_id, current))
        tree = _version(
            cmd.tree,
            tree_id=cmd.tree_id,
            account_id=cmd.account_id,
            user_id=cmd.user_id,
            version=current + 1,
            at=utcnow(),
        )
        await uow.trees.add_version(tree)
        return await _get(uow, account_id=cmd.account_id, tree_id=cmd.tree_id)


async def delete_tree(cmd: DeleteTree, *, db: Database) -> None:
    """Soft delete: the tree leaves lists and search; its versions stay for the sessions that used them."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        if not await uow.trees.soft_delete(account_id=cmd.account_id, tree_id=cmd.tree_id, at=utcnow()):
            raise TreeNotFound()


async def _get(
    uow: SessionsUnitOfWork, *, account_id: UUID, tree_id: UUID, version: int | None = None
) -> TreeRead:
    tree = await uow.trees.get(account_id=account_id, tree_id=tree_id, version=version)
    if tree is None:
        raise TreeNotFound() if version is None else TreeVersionNotFound(version)
    return tree


async def get_tree(*, db: Database, account_id: UUID, tree_id: UUID, version: int | None = None) -> TreeRead:
    """The latest version of a live tree, or the given version."""
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        return await _get(uow, account_id=account_id, tree_id=tree_id, version=version)


async def list_trees(*, db: Database, account_id: UUID, category: str | None, limit: int, offset: int) -> TreePage:
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        items, total = await uow.trees.page(account_id=account_id, category=category, limit=limit, offset=offset)
    return TreePage(items=items, total=total, limit=limit, offset=offset)


async def tree_categories(*, db: Database, account_id: UUID) -> list[TreeCategory]:
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        return await uow.trees.categories(account_id=account_id)


async def search_trees(
    *, db: Database, account_id: UUID, q: str, category: str | None, limit: int, offset: int
) -> TreeSearchPage:
    async with db.unit_of_work(SessionsUnitOfWork) as uow:
        items, total = await uow.trees.search(
            account_id=account_id, q=q, category=category, limit=limit, offset=offset
        )
    return TreeSearchPage(query=q, items=items, total=total, limit=limit, offset=offset)
