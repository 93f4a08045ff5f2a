"""The live queue route, GET /handoffs/queue/stream, and the lifespan that runs its engine (handoffs.live_queue)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse

from handoffs import handlers
from handoffs.live_queue import LiveQueue
from handoffs.settings import Settings
from rfkit import sse
from rfkit.auth import CurrentPrincipal
from rfkit.errors import NotFound


def lifespan_router(settings: Settings) -> APIRouter:
    """A route-less router whose lifespan (inside the runtime's, so the database is up) runs the live queue."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = app.state.runtime.db

        async def render(account_id: UUID, handoff_id: UUID) -> bytes | None:
            try:
                detail = await handlers.get_detail(db=db, account_id=account_id, handoff_id=handoff_id)
            except NotFound:
                return None
            return detail.model_dump_json().encode()

        live = LiveQueue(db, render, settings)
        await live.start()
        app.state.live_queue = live
        try:
            yield
        finally:
            await live.stop()

    return APIRouter(lifespan=lifespan)


def get_live_queue(request: Request) -> LiveQueue:
    return request.app.state.live_queue


def get_token_check(request: Request, principal: CurrentPrincipal) -> Callable[[], bool]:
    """Whether the caller's token is still not revoked (asked again during the stream, from the denial feed)."""
    denials = request.app.state.denials
    if denials is None:
        return lambda: True
    return lambda: denials.reason(principal.token_id) is None


# The route's dependencies (to join the service's deps.py when it has one).
Live = Annotated[LiveQueue, Depends(get_live_queue)]
TokenCheck = Annotated[Callable[[], bool], Depends(get_token_check)]

router = APIRouter(tags=["handoffs"])


@router.get(
    "/handoffs/queue/stream",
    response_class=StreamingResponse,
    responses={**sse.OK, 422: {"description": "Last-Event-ID is not an event id"}},
    description=sse.DESCRIPTION,
)
async def queue_stream(
    principal: CurrentPrincipal,
    live: Live,
    token_valid: TokenCheck,
    last_event_id: sse.LastEventIdQuery = None,
    last_event_id_header: sse.LastEventIdHeader = None,
) -> StreamingResponse:
    """The live queue of the caller's account (any role)."""
    sse.check_unexpired(principal.expires_at)
    after = sse.resume_after(last_event_id_header, last_event_id)
    body = live.stream(
        account_id=principal.account_id,
        last_event_id=after,
        expires_at=principal.expires_at,
        still_valid=token_valid,
    )
    return StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
