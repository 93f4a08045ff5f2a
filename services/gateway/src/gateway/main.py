"""Builds the gateway service: `uvicorn gateway.main:create_app --factory`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway import api, handlers, public
from gateway.handlers import Identity
from gateway.middleware import BodyLimit
from gateway.proxy import Upstreams
from gateway.security import Passwords, TokenIssuer
from gateway.settings import Settings
from rfkit.auth import Principal
from rfkit.service import ServiceRuntime
from rfkit.web import build_app

log = logging.getLogger(__name__)


class GatewayRuntime(ServiceRuntime):
    """The kit's runtime plus the pooled HTTP client to the services, opened and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        # The gateway publishes and consumes nothing: no Kafka connection, so a Kafka outage cannot touch it.
        super().__init__(settings, package="gateway", produces=False, kafka=settings.uses_kafka)
        self.gateway_settings = settings
        self.upstreams: Upstreams | None = None

    async def start(self) -> None:
        await super().start()
        s = self.gateway_settings
        if s.ephemeral_signing_key:
            log.warning(
                "no RF_JWT_PRIVATE_KEY given: signing with a throwaway key (env=%s); tokens die with this process "
                "and services cannot verify them unless given its public key", s.env,
            )
        self.upstreams = Upstreams(
            s.upstreams(), connect_timeout_s=s.upstream_connect_timeout_s, timeout_s=s.upstream_timeout_s,
            max_connections=s.upstream_max_connections,
        )

    async def stop(self) -> None:
        if self.upstreams is not None:
            await self.upstreams.aclose()
            self.upstreams = None
        await super().stop()


async def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # The identity database is down or saturated: a condition to retry, not a bug (503, never 500).
    log.warning("identity store unavailable: %r", exc)
    return JSONResponse({"detail": "identity store unavailable; try again shortly"}, status_code=503,
                        headers={"Retry-After": "1"})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = GatewayRuntime(settings)
    app = build_app(
        runtime,
        title="ResolutionFlow API",
        routers=[api.router, *public.routers()],
    )
    app.include_router(api.internal)
    app.description = (
        "The public API of ResolutionFlow. Identity is answered by the gateway; every other route is "
        "authenticated and authorized here, then forwarded to the service that owns it, which checks again."
    )
    identity = Identity(
        db=runtime.db,
        passwords=Passwords(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
                            parallelism=settings.argon2_parallelism, concurrency=settings.password_hash_concurrency),
        tokens=TokenIssuer(settings.signing_key_pem, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                           ttl_s=settings.access_token_ttl_s),
        settings=settings,
    )
    app.state.identity = identity

    async def principal_check(_: Request, principal: Principal) -> None:
        # rfkit.auth calls this after the signature, issuer, audience and expiry checks, on every request.
        await handlers.check_principal(identity, principal)

    app.state.principal_check = principal_check
    for unavailable in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError):
        app.add_exception_handler(unavailable, _store_unavailable)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        # Outside the body limit and every route, so that a preflight is answered here and every answer (errors
        # included) carries the headers a browser needs to let the page read it. Bearer tokens, not cookies:
        # no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["ETag", "Retry-After", "X-Request-ID", "WWW-Authenticate"],
            max_age=600,
        )
    if settings.trusted_proxies:
        # Outermost, so that everything after it (throttles, logs) sees the client rather than the proxy.
        # Servers run uvicorn with --no-proxy-headers: this setting alone decides whom to believe.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[str(net) for net in settings.trusted_proxies])
    return app
