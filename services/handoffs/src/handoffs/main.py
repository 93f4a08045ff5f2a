"""Builds the handoffs service: `uvicorn handoffs.main:create_app --factory`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from handoffs import api, consumers, queue_stream
from handoffs.sessions_client import SessionsClient
from handoffs.settings import Settings
from rfkit.service import ServiceRuntime
from rfkit.web import build_app


def _outbound_clients(settings: Settings) -> APIRouter:
    """A route-less router whose lifespan (run inside the runtime's) owns the HTTP client to sessions."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = SessionsClient(settings.sessions_url, timeout_s=settings.sessions_timeout_s)
        app.state.sessions_client = client
        try:
            yield
        finally:
            await client.aclose()

    return APIRouter(lifespan=lifespan)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, package="handoffs")
    consumers.register(runtime)  # before the app starts: the runtime starts the broker with its subscribers
    return build_app(
        runtime,
        title="ResolutionFlow handoffs",
        routers=[api.router, queue_stream.router, _outbound_clients(settings), queue_stream.lifespan_router(settings)],
    )
