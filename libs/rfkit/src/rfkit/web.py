"""The HTTP side every service shares: app factory, request ids, errors as `{"detail"}`, health and metrics."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rfkit import metrics
from rfkit.errors import DomainError
from rfkit.logs import request_id_var

log = logging.getLogger(__name__)


class RequestContextMiddleware:
    """Pure ASGI (cheap on the hot path): X-Request-ID in and out, and a latency histogram per route."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope.get("headers") or () if name == b"x-request-id"), b"")
        rid = given.decode("latin-1")[:128] or uuid.uuid4().hex
        token = request_id_var.set(rid)
        status_code = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            metrics.HTTP_REQUESTS.labels(self.service, scope.get("method", ""), path, str(status_code)).observe(
                time.perf_counter() - started
            )
            request_id_var.reset(token)


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"], include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        checks = await runtime.readiness()
        ready = runtime.started and all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def build_app(
    runtime: Any,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    prefix: str = "/api/v1",
    version: str = "0.1.0",
) -> FastAPI:
    """A FastAPI app whose lifespan is the runtime's; routers are mounted under `prefix`."""
    app = FastAPI(title=title, version=version, lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.state.verifier = runtime.verifier
    app.state.denials = getattr(runtime, "denials", None)
    app.add_middleware(RequestContextMiddleware, service=runtime.settings.service_name)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router, prefix=prefix)
    return app
