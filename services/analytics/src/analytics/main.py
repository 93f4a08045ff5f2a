"""Builds the analytics service: `uvicorn analytics.main:create_app --factory`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from analytics import api, consumers
from analytics.recompute import BusinessRecompute
from analytics.settings import Settings
from rfkit.service import ServiceRuntime
from rfkit.web import build_app


def _background(settings: Settings, runtime: ServiceRuntime) -> APIRouter:
    """A route-less router whose lifespan (run inside the runtime's) owns the business-seconds recompute loop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.business_recompute:
            yield
            return
        recompute = BusinessRecompute(
            runtime.db,
            service=settings.service_name,
            interval_s=settings.business_recompute_interval_s,
            batch_size=settings.business_recompute_batch_size,
        )
        app.state.business_recompute = recompute
        recompute.start()
        try:
            yield
        finally:
            await recompute.stop()

    return APIRouter(lifespan=lifespan)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Analytics publishes nothing: no outbox relay.
    runtime = ServiceRuntime(settings, package="analytics", produces=False)
    consumers.register(runtime, settings)
    return build_app(
        runtime, title="ResolutionFlow analytics", routers=[api.router, _background(settings, runtime)]
    )
