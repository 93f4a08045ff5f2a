"""HTTP routes of trees and sessions: parse, authorize (deps), build the command, call one handler, answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse

from rf_contracts.api.sessions import (
    ExportFormat,
    SessionComplete,
    SessionCreate,
    SessionExport,
    SessionPage,
    SessionRead,
    SessionStatus,
    SessionUpdate,
    StepCreate,
    StepPage,
    StepRead,
)
from rf_contracts.api.trees import (
    Category,
    Storable,
    TreeCategory,
    TreeCreate,
    TreePage,
    TreeRead,
    TreeReplace,
    TreeSearchPage,
    TreeViolation,
)
from sessions.deps import Admin, CurrentPrincipal, Db, Engineer, IfMatchHeader
from sessions.domain import AccountScopeForbidden
from sessions.export import render_markdown
from sessions.handlers import sessions as session_cases
from sessions.handlers import steps as step_cases
from sessions.handlers import trees as tree_cases

Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
CategoryFilter = Annotated[Category | None, Query(description="only trees of this category")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or bad token"},
    403: {"description": "role too low"},
    404: {"description": "not found or belongs to another account"},
}
_INVALID_TREE: dict[int | str, dict[str, Any]] = {
    422: {"description": "invalid input, or a tree that is not a valid graph (each violation names node and rule)",
          "model": dict[str, list[TreeViolation]]}
}

_ETAG = {"ETag": {"description": "strong entity tag of this version of the resource; send it back as If-Match",
                  "schema": {"type": "string"}}}
_TREE_ETAG = {"description": "the tree", "headers": _ETAG}
_SESSION_ETAG = {"description": "the session", "headers": _ETAG}
_STALE: dict[int | str, dict[str, Any]] = {
    412: {"description": "If-Match does not match the current ETag (the resource changed); code precondition_failed"}
}

trees_router = APIRouter(prefix="/trees", tags=["trees"], responses=_ERRORS)
sessions_router = APIRouter(prefix="/sessions", tags=["sessions"], responses=_ERRORS)


# --- trees -------------------------------------------------------------------------------------------------


@trees_router.get("", response_model=TreePage, summary="List the account's trees")
async def list_trees(
    principal: CurrentPrincipal, db: Db, category: CategoryFilter = None, limit: Limit = 50, offset: Offset = 0
) -> TreePage:
    return await tree_cases.list_trees(
        db=db, account_id=principal.account_id, category=category, limit=limit, offset=offset
    )


@trees_router.get("/categories", response_model=list[TreeCategory], summary="Categories with their tree counts")
async def tree_categories(principal: CurrentPrincipal, db: Db) -> list[TreeCategory]:
    return await tree_cases.tree_categories(db=db, account_id=principal.account_id)


@trees_router.get("/search", response_model=TreeSearchPage, summary="Ranked full-text search")
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


def _tree_tagged(response: Response, tree: TreeRead) -> TreeRead:
    response.headers["ETag"] = tree_cases.tree_etag(tree.id, tree.version)
    return tree


def _session_tagged(response: Response, read: SessionRead) -> SessionRead:
    response.headers["ETag"] = session_cases.session_etag(read.id, read.updated_at)
    return read


@trees_router.get(
    "/{tree_id}",
    response_model=TreeRead,
    responses={200: _TREE_ETAG},
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


@trees_router.post(
    "",
    response_model=TreeRead,
    status_code=status.HTTP_201_CREATED,
    responses={201: _TREE_ETAG, **_INVALID_TREE},
    summary="Create a tree",
)
async def create_tree(body: TreeCreate, principal: Engineer, db: Db, response: Response) -> TreeRead:
    cmd = tree_cases.CreateTree(account_id=principal.account_id, user_id=principal.user_id, tree=body)
    tree = await tree_cases.create_tree(cmd, db=db)
    return _tree_tagged(response, tree)


@trees_router.put(
    "/{tree_id}",
    response_model=TreeRead,
    responses={200: _TREE_ETAG, **_INVALID_TREE, **_STALE},
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


@trees_router.delete("/{tree_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Soft delete (admin)")
async def delete_tree(tree_id: UUID, principal: Admin, db: Db) -> Response:
    await tree_cases.delete_tree(tree_cases.DeleteTree(account_id=principal.account_id, tree_id=tree_id), db=db)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- sessions ----------------------------------------------------------------------------------------------


@sessions_router.get("", response_model=SessionPage, summary="The caller's sessions (engineer+: ?scope=account)")
async def list_sessions(
    principal: CurrentPrincipal,
    db: Db,
    scope: Literal["mine", "account"] = "mine",
    status_: Annotated[SessionStatus | None, Query(alias="status")] = None,
    tree_id: UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SessionPage:
    if scope == "account" and not principal.at_least("engineer"):
        raise AccountScopeForbidden()
    return await session_cases.list_sessions(
        db=db,
        account_id=principal.account_id,
        started_by=principal.user_id if scope == "mine" else None,
        status=status_,
        tree_id=tree_id,
        limit=limit,
        offset=offset,
    )


@sessions_router.get(
    "/{session_id}",
    response_model=SessionRead,
    responses={200: _SESSION_ETAG},
    summary="A session with its current node",
)
async def get_session(session_id: UUID, principal: CurrentPrincipal, db: Db, response: Response) -> SessionRead:
    read = await session_cases.get_session(db=db, account_id=principal.account_id, session_id=session_id)
    return _session_tagged(response, read)


@sessions_router.post(
    "",
    response_model=SessionRead,
    status_code=status.HTTP_201_CREATED,
    responses={201: _SESSION_ETAG},
    summary="Start a session at a tree's root",
)
async def start_session(body: SessionCreate, principal: Engineer, db: Db, response: Response) -> SessionRead:
    cmd = session_cases.StartSession(
        account_id=principal.account_id,
        user_id=principal.user_id,
        tree_id=body.tree_id,
        title=body.title,
        context=body.context,
    )
    read = await session_cases.start_session(cmd, db=db)
    return _session_tagged(response, read)


@sessions_router.put(
    "/{session_id}",
    response_model=SessionRead,
    responses={200: _SESSION_ETAG, 409: {"description": "the session is completed"}, **_STALE},
    summary="Update title/notes, or answer the current node",
)
async def update_session(
    session_id: UUID, body: SessionUpdate, principal: Engineer, db: Db, response: Response, precondition: IfMatchHeader
) -> SessionRead:
    cmd = session_cases.UpdateSession(
        account_id=principal.account_id,
        user_id=principal.user_id,
        session_id=session_id,
        title=body.title,
        notes=body.notes,
        answer=body.answer,
        if_match=precondition,
    )
    read = await session_cases.update_session(cmd, db=db)
    return _session_tagged(response, read)


@sessions_router.get("/{session_id}/steps", response_model=StepPage, summary="The journal, oldest first")
async def list_steps(
    session_id: UUID, principal: CurrentPrincipal, db: Db, limit: Limit = 50, offset: Offset = 0
) -> StepPage:
    return await step_cases.list_steps(
        db=db, account_id=principal.account_id, session_id=session_id, limit=limit, offset=offset
    )


@sessions_router.post(
    "/{session_id}/steps",
    response_model=StepRead,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "the session is completed"}},
    summary="Add a step to the journal",
)
async def add_step(session_id: UUID, body: StepCreate, principal: Engineer, db: Db) -> StepRead:
    cmd = step_cases.AddStep(
        account_id=principal.account_id,
        user_id=principal.user_id,
        session_id=session_id,
        kind=body.kind,
        content=body.content,
        actor_type=body.actor_type,
        node_id=body.node_id,
    )
    return await step_cases.add_step(cmd, db=db)


@sessions_router.post(
    "/{session_id}/complete",
    response_model=SessionRead,
    responses={200: _SESSION_ETAG, 409: {"description": "already completed"}},
    summary="Complete with an outcome",
)
async def complete_session(
    session_id: UUID, body: SessionComplete, principal: Engineer, db: Db, response: Response
) -> SessionRead:
    cmd = session_cases.CompleteSession(
        account_id=principal.account_id,
        user_id=principal.user_id,
        session_id=session_id,
        outcome=body.outcome,
        summary=body.summary,
    )
    read = await session_cases.complete_session(cmd, db=db)
    return _session_tagged(response, read)


@sessions_router.post(
    "/{session_id}/export",
    response_model=SessionExport,
    responses={200: {"content": {"text/markdown": {}}, "description": "the session as a document"}},
    summary="Export as Markdown or JSON",
)
async def export_session(
    session_id: UUID, principal: CurrentPrincipal, db: Db, format: ExportFormat = "markdown"
) -> Response:
    doc = await session_cases.export_session(db=db, account_id=principal.account_id, session_id=session_id)
    filename = f"session-{session_id}.{'md' if format == 'markdown' else 'json'}"
    headers = {"Content-Disposition": f'inline; filename="{filename}"'}
    if format == "json":
        return JSONResponse(doc.model_dump(mode="json"), headers=headers)
    return PlainTextResponse(render_markdown(doc), media_type="text/markdown; charset=utf-8", headers=headers)


routers = [trees_router, sessions_router]
