"""The HTTP side every service shares: app factory, request ids, errors as `{"detail", "code"}`, health, metrics."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi._compat import get_flat_models_from_fields, get_model_name_map
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_fields_from_routes
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rf_contracts.api.tags import TAG_DESCRIPTIONS
from rfkit import metrics
from rfkit.asgi import HttpMiddleware
from rfkit.error_docs import document_errors
from rfkit.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from rfkit.idempotency import Idempotency, post_paths
from rfkit.jsonbody import StrictJSON
from rfkit.logs import request_id_var
from rfkit.problems import invalid_request, problem

log = logging.getLogger(__name__)


class RequestContextMiddleware(HttpMiddleware):
    """X-Request-ID in and out, and a latency histogram per route."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        super().__init__(app)
        self.service = service

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
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


# The one place where the kit's domain errors become HTTP answers; a service adds its own errors through
# `build_app(error_statuses=...)` (a subclass not listed answers as its nearest listed ancestor).
ERROR_STATUSES: Mapping[type[DomainError], int] = {
    DomainError: 400,
    Invalid: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    RateLimited: 429,
    Unavailable: 503,
}


def error_status(exc: DomainError, statuses: Mapping[type[DomainError], int] = ERROR_STATUSES) -> int:
    """The HTTP status of a domain error: that of its class or of its nearest ancestor in `statuses`."""
    for cls in type(exc).__mro__:
        if cls in statuses:
            return statuses[cls]  # type: ignore[index]
    return 400


# The code of a domain error whose raise site named none, and the sentence of one that carries only data.
DEFAULT_CODES: Mapping[type[DomainError], tuple[str, str]] = {
    DomainError: ("bad_request", "the request was refused"),
    Invalid: ("invalid_input", "the request breaks a rule"),
    Unauthenticated: ("not_authenticated", "not authenticated"),
    Forbidden: ("forbidden", "not allowed"),
    NotFound: ("not_found", "not found"),
    Conflict: ("conflict", "the current state does not allow this"),
    PreconditionFailed: ("precondition_failed", "the resource has changed since it was read"),
    RateLimited: ("rate_limited", "too many requests; try again later"),
    Unavailable: ("service_unavailable", "a dependency is unavailable; try again shortly"),
}
_RESERVED = frozenset({"detail", "code", "errors"})


def error_body(exc: DomainError) -> dict[str, Any]:
    """`{"detail": sentence, "code", ...}` of a domain error.

    A detail that is data rather than a sentence is kept: a mapping's members go beside detail and code (its
    `message`, if any, is the sentence), a list goes under `errors`.
    """
    default_code, default_detail = next(DEFAULT_CODES[c] for c in type(exc).__mro__ if c in DEFAULT_CODES)
    code = exc.code or default_code
    detail = exc.detail
    if isinstance(detail, str):
        return {"detail": detail, "code": code}
    if isinstance(detail, Mapping):
        context = {str(k): v for k, v in detail.items()}
        sentence = context.pop("message", None) or default_detail
        return {"detail": str(sentence), "code": code, **{k: v for k, v in context.items() if k not in _RESERVED}}
    if isinstance(detail, list | tuple):
        first = detail[0] if detail else None
        said = first.get("message") or first.get("msg") if isinstance(first, Mapping) else None
        sentence = f"{default_detail}: {said}" if said else default_detail
        if len(detail) > 1:
            sentence += f" (and {len(detail) - 1} more; each is listed in errors)"
        return {"detail": sentence, "code": code, "errors": list(detail)}
    return {"detail": default_detail if detail is None else str(detail), "code": code}


def domain_error_handler(
    statuses: Mapping[type[DomainError], int] = ERROR_STATUSES,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """The exception handler that answers a domain error as `{"detail", "code"}` with its status and headers."""

    async def handle(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status = error_status(exc, statuses)
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(error_body(exc), status_code=status, headers=headers or None)

    return handle


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal error", "internal_error")


class LastResort(HttpMiddleware):
    """A 500 for an unhandled error, answered here so the connection stays usable.

    Starlette's own last handler re-raises after answering, and uvicorn then closes the connection: a client
    that had already queued its next request on it (the gateway's pool) saw that one fail too.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            await (await _unexpected(Request(scope), exc))(scope, receive, send)


_MAX_ECHO = 200


def _safe_text(value: str, limit: int = _MAX_ECHO) -> str:
    # Parts of an error can come from the input (a refused key in `loc`): bounded, and lone surrogates escaped
    # so the answer can be encoded at all.
    return value[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_value(value: Any) -> Any:
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _safe_text(value if isinstance(value, str) else str(value))


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The errors of a 422 without the `input` (it can be a password, NaN or a megabyte) and JSON-safe."""
    out = []
    for error in errors:
        item: dict[str, Any] = {
            "type": _safe_text(str(error.get("type", "value_error"))),
            "loc": [part if isinstance(part, int) else _safe_text(str(part)) for part in error.get("loc", ())],
            "msg": _safe_text(str(error.get("msg", "")), 5 * _MAX_ECHO),
        }
        if error.get("ctx"):
            item["ctx"] = {_safe_text(str(k)): _safe_value(v) for k, v in error["ctx"].items()}
        out.append(item)
    return out


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return invalid_request(validation_errors(exc.errors()))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        # Starlette names only the methods of the first route that matched the path; a path served by several
        # routes (GET and POST /trees) must list them all (RFC 9110 section 15.5.6).
        # Asked method by method: included routers only tell whether they fully match a request.
        allowed = [method for method in _METHODS if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.router.routes
        )]
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    if exc.status_code in (204, 304) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


def operation_id(route: APIRoute) -> str:
    """The operationId of a route: `<tag>_<action>`, e.g. `sessions_update` for `update_session` tagged "sessions".

    The action is the route's name (its function's, or `name=` of the decorator) without the words that repeat
    the tag (singular or plural), so generated clients read `sessions.update`, not
    `update_session_api_v1_sessions__session_id__put`. A route without a tag keeps its name.
    """
    words = route.name.split("_")
    if not route.tags:
        return route.name
    tag = str(route.tags[0]).replace("-", "_")
    resource = {tag, tag.removesuffix("s"), *tag.split("_"), *(w.removesuffix("s") for w in tag.split("_"))}
    action = [word for word in words if word not in resource] or words
    return f"{tag}_{'_'.join(action)}"


def _models(app: FastAPI) -> dict[str, Any]:
    """The models of the app's document by their component name, found as FastAPI finds them."""
    fields = get_fields_from_routes(app.routes)
    return {name: model for model, name in get_model_name_map(get_flat_models_from_fields(fields, set())).items()}


# FastAPI's own model of a 422 (routes that declare no model of theirs for it) has no example to put back.
_INVALID = {"loc": ["body", "email"], "msg": "String should have at least 3 characters", "type": "string_too_short",
            "ctx": {"min_length": 3}}
_FASTAPI_EXAMPLES = {"HTTPValidationError": [{"detail": [_INVALID]}], "ValidationError": [_INVALID]}


def _with_examples(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """app.openapi, with the models' examples as they are written.

    FastAPI drops every null from the document it generates, the nulls of examples included, which leaves an
    example of a required nullable field invalid against its own schema; they are put back from the models.
    """

    def openapi() -> dict[str, Any]:
        document = FastAPI.openapi(app)  # cached by FastAPI until the routes change
        models = _models(app)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            config = getattr(models.get(name), "model_config", None) or {}
            extra = config.get("json_schema_extra")
            if isinstance(extra, dict) and "examples" in extra:
                schema["examples"] = jsonable_encoder(extra["examples"])
            elif name in _FASTAPI_EXAMPLES:
                schema["examples"] = _FASTAPI_EXAMPLES[name]
        return document

    return openapi


def build_app(
    runtime: Any,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    prefix: str = "/api/v1",
    version: str = "0.1.0",
    error_statuses: Mapping[type[DomainError], int] | None = None,
    idempotent_routers: Sequence[APIRouter] | None = None,
    idempotency_secret: bytes | None = None,
    tag_descriptions: Mapping[str, str] | None = None,
) -> FastAPI:
    """A FastAPI app whose lifespan is the runtime's; routers are mounted under `prefix`.

    The POST routes of `idempotent_routers` (default: all `routers`) honour Idempotency-Key, keeping answers in
    this service's database (rfkit.idempotency; `idempotency_secret` seals what is kept). Every route's
    operationId follows `operation_id`; each tag the routers use is described from `tag_descriptions` (default:
    the public API's, rf_contracts.api.tags).
    """
    descriptions = TAG_DESCRIPTIONS if tag_descriptions is None else tag_descriptions
    used = list(dict.fromkeys(str(tag) for router in routers for route in router.routes
                              if isinstance(route, APIRoute) and route.include_in_schema for tag in route.tags))
    # No trailing-slash redirects (a wrong path is a 404): Starlette would build their Location from the Host
    # header, which the caller chooses.
    app = FastAPI(title=title, version=version, lifespan=runtime.lifespan, redirect_slashes=False,
                  generate_unique_id_function=operation_id,
                  openapi_tags=[{"name": tag, "description": descriptions[tag]} for tag in used
                                if tag in descriptions] or None)
    app.openapi = _with_examples(app)  # type: ignore[method-assign]
    app.state.runtime = runtime
    app.state.verifier = runtime.verifier
    app.state.denials = getattr(runtime, "denials", None)
    # Innermost first: a hostile body is refused before any route, and every answer gets its request id.
    keyed = post_paths(routers if idempotent_routers is None else idempotent_routers, prefix)
    app.add_middleware(Idempotency, owner=app, paths=keyed, secret=idempotency_secret)
    # Documented on every POST: the gateway's forwarded ones honour the key in the service that owns them.
    document_errors(app, post_paths(routers, prefix))
    app.add_middleware(StrictJSON)
    app.add_middleware(LastResort)
    app.add_middleware(RequestContextMiddleware, service=runtime.settings.service_name)
    app.add_exception_handler(DomainError, domain_error_handler({**ERROR_STATUSES, **(error_statuses or {})}))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router, prefix=prefix)
    return app
