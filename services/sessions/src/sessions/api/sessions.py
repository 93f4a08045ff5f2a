"""HTTP routes of sessions and their steps: parse, authorize (deps), build the command, call one handler, answer."""

from __future__ import annotations

from typing import Annotated, Literal
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
from sessions.api.common import ERRORS, SESSION_ETAG, STALE, Limit, Offset
from sessions.deps import CurrentPrincipal, Db, Engineer, IfMatchHeader
from sessions.domain import AccountScopeForbidden, SessionFilter
from sessions.export import render_markdown
from sessions.handlers import sessions as session_cases
from sessions.handlers import steps as step_cases

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=ERRORS)


def _session_tagged(response: Response, read: SessionRead) -> SessionRead:
    response.headers["ETag"] = session_cases.session_etag(read.id, read.updated_at)
    return read


@router.get("", response_model=SessionPage, summary="The caller's sessions (engineer+: ?scope=account)")
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
    where = SessionFilter(started_by=principal.user_id if scope == "mine" else None, status=status_, tree_id=tree_id)
    return await session_cases.list_sessions(
        db=db, account_id=principal.account_id, where=where, limit=limit, offset=offset
    )


@router.get(
    "/{session_id}",
    response_model=SessionRead,
    responses={200: SESSION_ETAG},
    summary="A session with its current node",
)
async def get_session(session_id: UUID, principal: CurrentPrincipal, db: Db, response: Response) -> SessionRead:
    read = await session_cases.get_session(db=db, account_id=principal.account_id, session_id=session_id)
    return _session_tagged(response, read)


@router.post(
    "",
    response_model=SessionRead,
    status_code=status.HTTP_201_CREATED,
    responses={201: SESSION_ETAG},
    summary="Start a session at a tree's root",
)
async def start_session(body: SessionCreate, principal: Engineer, db: Db, response: Response) -> SessionRead:
    cmd = session_cases.StartSession(account_id=principal.account_id, user_id=principal.user_id, session=body)
    read = await session_cases.start_session(cmd, db=db)
    return _session_tagged(response, read)


@router.put(
    "/{session_id}",
    response_model=SessionRead,
    responses={200: SESSION_ETAG, 409: {"description": "the session is completed"}, **STALE},
    summary="Update title/notes, or answer the current node",
)
async def update_session(
    session_id: UUID, body: SessionUpdate, principal: Engineer, db: Db, response: Response, precondition: IfMatchHeader
) -> SessionRead:
    cmd = session_cases.UpdateSession(
        account_id=principal.account_id,
        user_id=principal.user_id,
        session_id=session_id,
        change=body,
        if_match=precondition,
    )
    read = await session_cases.update_session(cmd, db=db)
    return _session_tagged(response, read)


@router.get("/{session_id}/steps", response_model=StepPage, summary="The journal, oldest first")
async def list_steps(
    session_id: UUID, principal: CurrentPrincipal, db: Db, limit: Limit = 50, offset: Offset = 0
) -> StepPage:
    return await step_cases.list_steps(
        db=db, account_id=principal.account_id, session_id=session_id, limit=limit, offset=offset
    )


@router.post(
    "/{session_id}/steps",
    response_model=StepRead,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "the session is completed"}},
    summary="Add a step to the journal",
)
async def add_step(session_id: UUID, body: StepCreate, principal: Engineer, db: Db) -> StepRead:
    cmd = step_cases.AddStep(
        account_id=principal.account_id, user_id=principal.user_id, session_id=session_id, step=body
    )
    return await step_cases.add_step(cmd, db=db)


@router.post(
    "/{session_id}/complete",
    response_model=SessionRead,
    responses={200: SESSION_ETAG, 409: {"description": "already completed"}},
    summary="Complete with an outcome",
)
async def complete_session(
    session_id: UUID, body: SessionComplete, principal: Engineer, db: Db, response: Response
) -> SessionRead:
    cmd = session_cases.CompleteSession(
        account_id=principal.account_id, user_id=principal.user_id, session_id=session_id, completion=body
    )
    read = await session_cases.complete_session(cmd, db=db)
    return _session_tagged(response, read)


@router.post(
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
