"""Forwarding to the owning service: one pooled HTTP client, bounded time, failures as clear 502/503/504."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import Gauge
from starlette.types import Receive, Scope, Send

from gateway.upstream import BadResponse, ConnectFailed, StreamedAnswer, UpstreamPool
from rfkit.logs import request_id_var
from rfkit.problems import problem

OPEN_STREAMS = Gauge("rf_gateway_streams_open", "Event streams the gateway relays right now")

log = logging.getLogger(__name__)

# Only these request headers travel on: a fixed list keeps hop-by-hop headers, Host, cookies and whatever a
# client invents from reaching the services.
_FORWARDED_REQUEST_HEADERS = frozenset({
    b"authorization", b"content-type", b"accept", b"accept-language", b"tracestate", b"if-match",
    b"if-none-match", b"idempotency-key", b"last-event-id",
})
# Hop-by-hop headers (RFC 9110 section 7.6.1) and those the gateway sets itself are not copied back.
_DROPPED_RESPONSE_HEADERS = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"trailers",
    b"transfer-encoding", b"upgrade", b"content-length", b"server", b"date", b"x-request-id",
})
_BODYLESS = frozenset({204, 304})
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def traceparent_of(value: str | None) -> str:
    """The caller's W3C traceparent when it is well-formed, else the start of a new trace."""
    if value:
        value = value.strip().lower()
        if _TRACEPARENT.match(value) and not value.startswith("ff"):
            return value
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class Upstreams:
    """The services behind the gateway, each reached through its own pool of keep-alive connections."""

    def __init__(
        self, urls: dict[str, str], *, connect_timeout_s: float, timeout_s: float, max_connections: int,
        max_streams: int = 10_000, stream_idle_timeout_s: float = 60.0,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_streams = max_streams
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self.open_streams = 0
        self._pools: dict[str, tuple[UpstreamPool, bytes]] = {}
        for name, url in urls.items():
            scheme, host, port, prefix = _parse_base(url)
            pool = UpstreamPool(host, port, tls=scheme == "https", max_connections=max_connections,
                                connect_timeout_s=connect_timeout_s)
            self._pools[name] = (pool, prefix)

    async def aclose(self) -> None:
        for pool, _ in self._pools.values():
            pool.close()

    async def forward(self, request: Request, service: str) -> Response:
        """Send the request as it came (method, path, query, body, selected headers); return the answer as is."""
        pool, prefix = self._pools[service]
        target, headers = self._outgoing(request, prefix)
        body = await request.body()
        method = request.scope["method"].encode("latin-1")
        content = body if body or method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS") else None
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await pool.request(method, target, headers, content)
        except Exception as exc:
            return self._failed(service, exc)
        return _answer(service, answer.status, answer.headers, answer.body)

    async def stream(self, request: Request, service: str, *, until: float) -> Response:
        """Relay an event stream (a GET) as the service sends it, piece by piece, until `until` (epoch seconds: the
        caller's token expiry), the service's end, or the client's going away (which closes the service's side)."""
        if self.open_streams >= self.max_streams:
            return _error(503, "too many open streams; try again shortly", "service_unavailable", retry_after=5)
        pool, prefix = self._pools[service]
        target, headers = self._outgoing(request, prefix)
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await pool.stream(b"GET", target, headers)
        except Exception as exc:
            return self._failed(service, exc)
        if answer.status != 200:
            try:
                async with asyncio.timeout(self.timeout_s):
                    body = await answer.read()
            except Exception as exc:
                return self._failed(service, exc)
            finally:
                answer.close()
            return _answer(service, answer.status, answer.headers, body)
        response = _Relayed(self._relay(answer, until), on_end=answer.close)
        response.raw_headers += [(k, v) for k, v in answer.headers if k.lower() not in _DROPPED_RESPONSE_HEADERS]
        return response

    async def _relay(self, answer: StreamedAnswer, until: float) -> AsyncIterator[bytes]:
        self.open_streams += 1
        OPEN_STREAMS.inc()
        try:
            while (left := until - time.time()) > 0:
                try:
                    # asyncio.timeout, not wait_for: no task per piece relayed.
                    async with asyncio.timeout(min(left, self.stream_idle_timeout_s)):
                        chunk = await answer.next_chunk()
                except TimeoutError:
                    if until - time.time() > 0:
                        log.warning("an event stream was silent for %.0fs: closed", self.stream_idle_timeout_s)
                    return
                except BadResponse:
                    return  # the service went away: the client reconnects with its last event id
                if chunk is None:
                    return
                yield chunk
        finally:
            # Whatever ended it (expiry, the service, the client's disconnect cancelling this generator).
            answer.close()
            self.open_streams -= 1
            OPEN_STREAMS.dec()

    def _failed(self, service: str, exc: Exception) -> JSONResponse:
        """The answer when the service could not be asked (or not understood); re-raises anything else."""
        if isinstance(exc, ConnectFailed):
            log.warning("%s unreachable: %s", service, exc)
            return _error(503, f"the {service} service is unavailable; try again shortly", "upstream_unavailable",
                          retry_after=1)
        if isinstance(exc, TimeoutError):
            log.warning("%s did not answer within %.1fs", service, self.timeout_s)
            return _error(504, f"the {service} service did not answer within {self.timeout_s:g}s", "upstream_timeout")
        if isinstance(exc, BadResponse):
            log.warning("%s answered badly: %s", service, exc)
            return _error(502, f"the {service} service gave no valid answer", "upstream_failed")
        if isinstance(exc, ValueError):
            return _error(400, "the request cannot be forwarded", "bad_request")
        raise exc

    def _outgoing(self, request: Request, prefix: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The target and headers of the request to the service."""
        scope = request.scope
        target = prefix + (scope.get("raw_path") or scope["path"].encode())
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers: list[tuple[bytes, bytes]] = []
        traceparent = None
        for name, value in scope["headers"]:  # one pass over the caller's headers (names arrive lower-cased)
            if name in _FORWARDED_REQUEST_HEADERS:
                headers.append((name, value))
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
        headers += [
            # Set by the kit's request-context middleware: the caller's X-Request-ID, or a new one.
            (b"x-request-id", (request_id_var.get() or "").encode("latin-1")),
            (b"traceparent", traceparent_of(traceparent).encode("latin-1")),
            # The body is passed through untouched: the service must not compress what the client did not ask for.
            (b"accept-encoding", b"identity"),
        ]
        return target, headers


class _Relayed(StreamingResponse):
    """A streamed answer that closes the service's side however it ends, even before its first piece was sent."""

    def __init__(self, content: AsyncIterator[bytes], *, on_end: Callable[[], None]) -> None:
        super().__init__(content)
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_end()


def _answer(service: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
    if status == 500:
        # Whatever went wrong over there is the service's failure, not the gateway's.
        return _error(502, f"the {service} service failed", "upstream_failed")
    # Starlette sets content-length (none for 204 and 304); the service's own headers follow, filtered.
    response = Response(b"" if status in _BODYLESS else body, status_code=status)
    response.raw_headers += [(k, v) for k, v in headers if k.lower() not in _DROPPED_RESPONSE_HEADERS]
    return response


def _parse_base(url: str) -> tuple[str, str, int, bytes]:
    """(scheme, host, port, path prefix) of a service's base URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/").encode()


def _error(status: int, detail: str, code: str, *, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return problem(status, detail, code, headers=headers)
