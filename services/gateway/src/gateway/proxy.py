"""Forwarding to the owning service: one pooled HTTP client, bounded time, failures as clear 502/503/504."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from gateway.upstream import BadResponse, ConnectFailed, UpstreamPool
from rfkit.logs import request_id_var
from rfkit.problems import problem

log = logging.getLogger(__name__)

# Only these request headers travel on: a fixed list keeps hop-by-hop headers, Host, cookies and whatever a
# client invents from reaching the services.
_FORWARDED_REQUEST_HEADERS = frozenset({
    b"authorization", b"content-type", b"accept", b"accept-language", b"tracestate", b"if-match",
    b"if-none-match", b"idempotency-key",
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
        self, urls: dict[str, str], *, connect_timeout_s: float, timeout_s: float, max_connections: int
    ) -> None:
        self.timeout_s = timeout_s
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
        body = await request.body()
        method = scope["method"].encode("latin-1")
        content = body if body or method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS") else None
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await pool.request(method, target, headers, content)
        except ConnectFailed as exc:
            log.warning("%s unreachable: %s", service, exc)
            return _error(503, f"the {service} service is unavailable; try again shortly", "upstream_unavailable",
                          retry_after=1)
        except TimeoutError:
            log.warning("%s did not answer within %.1fs", service, self.timeout_s)
            return _error(504, f"the {service} service did not answer within {self.timeout_s:g}s", "upstream_timeout")
        except BadResponse as exc:
            log.warning("%s answered badly: %s", service, exc)
            return _error(502, f"the {service} service gave no valid answer", "upstream_failed")
        except ValueError:
            return _error(400, "the request cannot be forwarded", "bad_request")
        if answer.status == 500:
            # Whatever went wrong over there is the service's failure, not the gateway's.
            return _error(502, f"the {service} service failed", "upstream_failed")
        # Starlette sets content-length (none for 204 and 304); the service's own headers follow, filtered.
        response = Response(b"" if answer.status in _BODYLESS else answer.body, status_code=answer.status)
        response.raw_headers += [(k, v) for k, v in answer.headers if k.lower() not in _DROPPED_RESPONSE_HEADERS]
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
