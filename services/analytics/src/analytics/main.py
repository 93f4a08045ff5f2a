"""Builds the analytics service: `uvicorn analytics.main:create_app --factory`."""

from fastapi import FastAPI

from analytics import api, consumers
from analytics.settings import Settings
from rfkit.service import ServiceRuntime
from rfkit.web import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Analytics publishes nothing: no outbox relay.
    runtime = ServiceRuntime(settings, package="analytics", produces=False)
    consumers.register(runtime, settings)
    return build_app(runtime, title="ResolutionFlow analytics", routers=[api.router])
