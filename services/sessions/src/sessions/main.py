"""Builds the sessions service: `uvicorn sessions.main:create_app --factory`."""

from fastapi import FastAPI

from rfkit.service import ServiceRuntime
from rfkit.web import build_app
from sessions import consumers
from sessions.api import routers
from sessions.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, package="sessions")
    consumers.register(runtime)
    return build_app(runtime, title="ResolutionFlow sessions", routers=routers)
