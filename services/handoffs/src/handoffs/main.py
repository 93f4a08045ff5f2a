"""Builds the handoffs service: `uvicorn handoffs.main:create_app --factory`."""

from fastapi import FastAPI

from rfkit.service import ServiceRuntime
from rfkit.web import build_app

from handoffs.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, package="handoffs")
    return build_app(runtime, title="ResolutionFlow handoffs")
