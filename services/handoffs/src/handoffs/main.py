"""Builds the handoffs service: `uvicorn handoffs.main:create_app --factory`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from handoffs import api, consumers, queue_stream
from handoffs.clients import SessionsClient
from handoffs.settings import Settings
from handoffs.stale import StaleDetector
from rfkit.clock import Clock, utcnow
from rfkit.service import ServiceRuntime
from rfkit.web import build_app


def _background(settings: Settings, runtime: ServiceRuntime, clock: Clock) -> APIRouter:
    """A route-less router whose lifespan (run inside the runtime's) owns the sessions client and the detector."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = SessionsClient(settings.sessions_url, timeout_s=settings.sessions_timeout_s)
        app.state.sessions_client = client
        detector = StaleDetector(
            runtime.db,
            service=settings.service_name,
            interval_s=settings.stale_check_interval_s,
            batch_size=settings.stale_batch_size,
            clock=clock,
        )
        app.state.stale_detector = detector
        detector.start()
        try:
            yield
        finally:
            await detector.stop()
            await client.aclose()

    return APIRouter(lifespan=lifespan)


def create_app(settings: Settings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    """`clock`: what the stale-claim detector takes as now (tests move it past a deadline)."""
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, package="handoffs")
    consumers.register(runtime)  # before the app starts: the runtime starts the broker with its subscribers
    return build_app(
        runtime,
        title="ResolutionFlow handoffs",
        routers=[api.router, queue_stream.router, _background(settings, runtime, clock),
                 queue_stream.lifespan_router(settings)],
    )
