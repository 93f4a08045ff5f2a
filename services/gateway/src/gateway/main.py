"""Builds the gateway service: `uvicorn gateway.main:create_app --factory`."""

from fastapi import FastAPI

from rfkit.service import ServiceRuntime
from rfkit.web import build_app

from gateway.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, package="gateway", produces=False)
    return build_app(runtime, title="ResolutionFlow gateway")
