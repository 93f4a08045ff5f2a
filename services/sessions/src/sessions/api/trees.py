"""HTTP routes of decision trees: parse, authorize (deps), build the command, call one handler, answer."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from rf_contracts.api.trees import Storable, TreeCategory, TreeCreate, TreePage, TreeRead, TreeReplace, TreeSearchPage
from sessions.api.common import ERRORS, INVALID_TREE, STALE, TREE_ETAG, CategoryFilter, Limit, Offset
from sessions.deps import Admin, CurrentPrincipal, Db, Engineer, IfMatchHeader
from sessions.handlers import trees as tree_cases

router = APIRouter(prefix="/trees", tags=["trees"], responses=ERRORS)


def _tree_tagged(response: Response, tree: TreeRead) -> TreeRead:
    response.headers["ETag"] = tree_cases.tree_etag(tree.id, tree.version)
    return tree


@router.get("", response_model=TreePage, summary="List the account's trees")
async def list_trees(
    principal: CurrentPrincipal, db: Db, category: CategoryFilter = None, limit: Limit = 50, offset: Offset = 0
) -> TreePage:
    return await tree_cases.list_trees(
        db=db, account_id=principal.account_id, category=category, limit=limit, offset=offset
    )


@router.get("/categories", response_model=list[TreeCategory], summary="Categories with their tree counts")
async def tree_categories(principal: CurrentPrincipal, db: Db) -> list[TreeCategory]:
    return await tree_cases.tree_categories(db=db, account_id=principal.account_id)


@router.get("/search", response_model=TreeSearchPage, summary="Ranked full-text search")
async def search_trees(
    principal: CurrentPrincipal,
    db: Db,
    q: Annotated[str, Query(min_length=1, max_length=500, description='words, "a phrase", or, -word'), Storable],
    category: CategoryFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TreeSearchPage:
    return await tree_cases.search_trees(
        db=db, account_id=principal.account_id, q=q, category=category, limit=limit, offset=offset
    )


@router.get(
    "/{tree_id}",
    response_model=TreeRead,
    responses={200: TREE_ETAG},
    summary="A tree with its nodes (latest or ?version=N)",
)
async def get_tree(
    tree_id: UUID,
    principal: CurrentPrincipal,
    db: Db,
    response: Response,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> TreeRead:
    tree = await tree_cases.get_tree(db=db, account_id=principal.account_id, tree_id=tree_id, version=version)
    return _tree_tagged(response, tree)


@router.post(
    "",
    response_model=TreeRead,
    status_code=status.HTTP_201_CREATED,
    responses={201: TREE_ETAG, **INVALID_TREE},
    summary="Create a tree",
)
async def create_tree(body: TreeCreate, principal: Engineer, db: Db, response: Response) -> TreeRead:
    cmd = tree_cases.CreateTree(account_id=principal.account_id, user_id=principal.user_id, tree=body)
    tree = await tree_cases.create_tree(cmd, db=db)
    return _tree_tagged(response, tree)


@router.put(
    "/{tree_id}",
    response_model=TreeRead,
    responses={200: TREE_ETAG, **INVALID_TREE, **STALE},
    summary="Replace: a new version",
)
async def replace_tree(
    tree_id: UUID, body: TreeReplace, principal: Engineer, db: Db, response: Response, precondition: IfMatchHeader
) -> TreeRead:
    cmd = tree_cases.ReplaceTree(
        account_id=principal.account_id, user_id=principal.user_id, tree_id=tree_id, tree=body, if_match=precondition
    )
    tree = await tree_cases.replace_tree(cmd, db=db)
    return _tree_tagged(response, tree)


@router.delete("/{tree_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Soft delete (admin)")
async def delete_tree(tree_id: UUID, principal: Admin, db: Db) -> Response:
    await tree_cases.delete_tree(tree_cases.DeleteTree(account_id=principal.account_id, tree_id=tree_id), db=db)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
