"""Builds the gateway service: `uvicorn gateway.main:create_app --factory`."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway import api, public
from gateway.deps import IdentityParts
from gateway.domain import KeyGrant
from gateway.handlers import api_keys
from gateway.key_exchange import EXCHANGED, ApiKeyAuth, KeyExchange
from gateway.middleware import BodyLimit
from gateway.principals import PrincipalCache, PrincipalCheck
from gateway.proxy import Upstreams
from gateway.security import Passwords, TokenIssuer
from gateway.settings import Settings
from rfkit.auth import Principal
from rfkit.errors import Unavailable
from rfkit.problems import problem
from rfkit.service import ServiceRuntime
from rfkit.web import LastResort, build_app

log = logging.getLogger(__name__)

_STORE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError)


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
            max_connections=s.upstream_max_connections, max_streams=s.max_open_streams,
            stream_idle_timeout_s=s.stream_idle_timeout_s,
        )

    async def stop(self) -> None:
        if self.upstreams is not None:
            await self.upstreams.aclose()
            self.upstreams = None
        await super().stop()


async def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # The identity database is down or saturated: a condition to retry, not a bug (503, never 500).
    log.warning("identity store unavailable: %r", exc)
    return problem(503, "identity store unavailable; try again shortly", "service_unavailable",
                   headers={"Retry-After": "1"})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = GatewayRuntime(settings)
    app = build_app(
        runtime,
        title="ResolutionFlow API",
        routers=[api.router, *public.routers()],
        # Forwarded POSTs keep their Idempotency-Key in the owning service; bodies here hold passwords, answers
        # tokens: what is kept is sealed with a secret derived from the signing key.
        idempotent_routers=[api.router],
        idempotency_secret=hashlib.sha256(b"rf-idempotency\0" + settings.signing_key_pem.encode()).digest(),
    )
    app.include_router(api.internal)
    app.description = (
        "The public API of ResolutionFlow. Identity is answered by the gateway; every other route is "
        "authenticated and authorized here, then forwarded to the service that owns it, which checks again."
    )
    cache = PrincipalCache(settings.principal_cache_ttl_s)
    tokens = TokenIssuer(settings.signing_key_pem, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                         ttl_s=settings.access_token_ttl_s)

    async def key_lookup(secret_hash: str, now: datetime) -> KeyGrant | None:
        try:
            return await api_keys.grant_for(secret_hash, now, db=runtime.db)
        except _STORE_DOWN as exc:
            # Looked up in a middleware, outside the routes and their exception handlers: told as a domain error.
            log.warning("identity store unavailable for an API key look-up: %r", exc)
            raise Unavailable("identity store unavailable; try again shortly", code="identity_store_unavailable",
                              retry_after_s=1) from exc

    # Built with the app (as the identity parts are): the database it looks keys up in opens with the lifespan.
    keys = KeyExchange(key_lookup, tokens, recheck_s=settings.api_key_recheck_s)
    app.state.key_exchange = keys
    app.state.identity = IdentityParts(
        db=runtime.db,
        passwords=Passwords(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
                            parallelism=settings.argon2_parallelism, concurrency=settings.password_hash_concurrency),
        tokens=tokens,
        policy=settings.identity_policy(),
        principals=cache,
        keys=keys,
    )
    check = PrincipalCheck(runtime.db, cache)

    async def principal_check(request: Request, principal: Principal) -> None:
        # rfkit.auth calls this after the signature, issuer, audience and expiry checks, on every request.
        await check(principal, exchanged=request.scope.get(EXCHANGED) is not None)

    app.state.principal_check = principal_check
    for unavailable in _STORE_DOWN:
        app.add_exception_handler(unavailable, _store_unavailable)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    # `Bearer rf_...` becomes an access token before anything reads Authorization (routes, rfkit.auth, the
    # forwarding). Placed just inside the kit's request context and last resort (outermost first: request
    # context, last resort, this, strict JSON, ...): its 401 carries a request id and is counted, and a failure
    # in it is a clean 500.
    after_last_resort = next(i for i, m in enumerate(app.user_middleware) if m.cls is LastResort) + 1
    app.user_middleware.insert(after_last_resort, Middleware(ApiKeyAuth))
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
