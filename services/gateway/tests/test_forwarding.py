"""Forwarding through real sockets: what reaches the service, what comes back, and a service down or slow."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from rf_testsupport import Served
from rf_testsupport.gateway import API, Gateway, User, closed_port_url, start_gateway

TIMEOUT_S = 1.0
MAX_BODY = 64 * 1024
TREE = {"title": "Printer", "root_node_id": "a", "nodes": [{"id": "a", "kind": "solution", "text": "Reboot"}]}


@dataclass
class Echo:
    """A stand-in service that records each request and answers as the test asks (via query parameters)."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # request ids of the answers completed

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def echo(request: Request, path: str) -> Response:
            body = await request.body()
            record = {
                "method": request.method, "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(), "body": body.decode(),
                "headers": dict(request.headers),
                "client_port": request.client.port if request.client else None,
            }
            self.seen.append(record)
            q = request.query_params
            if "x_sleep" in q:
                await asyncio.sleep(float(q["x_sleep"]))
            self.finished.append(request.headers.get("x-request-id", ""))
            if "x_status" in q:
                status = int(q["x_status"])
                content = b"" if status == 204 else b'{"detail":"said the service",  "code":  7}'
                return Response(content, status_code=status, media_type="application/problem+json",
                                headers={"X-Service-Says": "hello", "Retry-After": "3"})
            if "x_stream" in q:  # chunked transfer encoding on the service's side

                async def parts() -> AsyncIterator[bytes]:
                    for part in (b'{"streamed": ', b"[1, 2, 3]", b"}"):
                        yield part

                return StreamingResponse(parts(), media_type="application/json")
            if "x_raw" in q:  # bytes the gateway must not re-serialize
                return Response(b'{"b": 2,\n   "a": [1,2 ,3]}', media_type="application/json; charset=utf-8")
            return Response(json.dumps(record), media_type="application/json")

        return app


@dataclass
class Setup:
    gateway: Gateway
    echo: Echo
    viewer: User
    engineer: User
    admin: User


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def setup(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[Setup]:
    echo = Echo()
    async with Served(echo.app(), lifespan="off") as served:
        # sessions and handoffs live behind the echo server; analytics is down (nothing listens there).
        gateways = start_gateway(
            kafka_bootstrap, make_session_database("gateway"), sessions_url=served.url, handoffs_url=served.url,
            analytics_url=closed_port_url(), upstream_timeout_s=TIMEOUT_S, max_request_bytes=MAX_BODY,
        )
        gw = await gateways.__anext__()
        try:
            admin, _ = await gw.register()
            yield Setup(gw, echo, await gw.add_user(admin, "viewer"), await gw.add_user(admin, "engineer"), admin)
        finally:
            await gateways.aclose()


async def test_method_path_query_and_body_arrive_untouched(setup: Setup) -> None:
    tree_id = uuid.uuid4()
    raw_body = '{"title":"Printer",  "root_node_id":"a","nodes":[{"id":"a","kind":"solution","text":"Reboot"}]}'
    r = await setup.gateway.client.put(
        f"{API}/trees/{tree_id}?b=2&a=1&a=%20x", content=raw_body,
        headers={**setup.engineer.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == f"/api/v1/trees/{tree_id}"
    assert seen["query"] == "b=2&a=1&a=%20x"
    assert seen["body"] == raw_body
    assert seen["headers"]["content-type"] == "application/json"


async def test_authorization_request_id_and_traceparent_are_passed_on(setup: Setup) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = await setup.gateway.client.get(f"{API}/trees", headers={
        **setup.viewer.headers, "X-Request-ID": "req-123", "traceparent": trace, "Cookie": "secret=1",
        "X-Forwarded-Host": "evil.example",
    })
    seen = r.json()["headers"]
    assert seen["authorization"] == setup.viewer.headers["Authorization"]
    assert seen["x-request-id"] == "req-123"
    assert r.headers["x-request-id"] == "req-123"
    assert seen["traceparent"] == trace
    # Only a fixed set of headers travels on.
    assert "cookie" not in seen and "x-forwarded-host" not in seen


async def test_a_request_id_and_a_traceparent_are_made_when_missing(setup: Setup) -> None:
    r = await setup.gateway.client.get(f"{API}/trees", headers=setup.viewer.headers)
    seen = r.json()["headers"]
    assert seen["x-request-id"] and seen["x-request-id"] == r.headers["x-request-id"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", seen["traceparent"])
    malformed = await setup.gateway.client.get(f"{API}/trees",
                                               headers={**setup.viewer.headers, "traceparent": "garbage"})
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", malformed.json()["headers"]["traceparent"])


async def test_each_area_reaches_its_own_service(setup: Setup) -> None:
    cases = [
        ("GET", f"{API}/sessions/{uuid.uuid4()}/steps?limit=5", None),
        ("POST", f"{API}/handoffs/{uuid.uuid4()}/claim", None),
        ("GET", f"{API}/handoffs/stats", None),
        ("POST", f"{API}/sessions", {"tree_id": str(uuid.uuid4())}),
    ]
    for method, url, body in cases:
        r = await setup.gateway.client.request(method, url, json=body, headers=setup.engineer.headers)
        assert r.status_code == 200, (url, r.text)
        assert r.json()["method"] == method and url.endswith(r.json()["raw_path"] + (
            "?" + r.json()["query"] if r.json()["query"] else ""))


async def test_the_services_answer_comes_back_byte_for_byte(setup: Setup) -> None:
    r = await setup.gateway.client.get(f"{API}/trees/categories?x_raw=1", headers=setup.viewer.headers)
    assert r.status_code == 200
    assert r.content == b'{"b": 2,\n   "a": [1,2 ,3]}'
    assert r.headers["content-type"] == "application/json; charset=utf-8"


async def test_a_chunked_answer_comes_back_whole_with_a_length(setup: Setup) -> None:
    r = await setup.gateway.client.get(f"{API}/trees/categories?x_stream=1", headers=setup.viewer.headers)
    assert r.status_code == 200 and r.content == b'{"streamed": [1, 2, 3]}'
    assert "transfer-encoding" not in r.headers and r.headers["content-length"] == str(len(r.content))


async def test_the_gateway_keeps_its_connections_to_a_service_open(setup: Setup) -> None:
    ports = set()
    for _ in range(5):
        r = await setup.gateway.client.get(f"{API}/trees/categories", headers=setup.viewer.headers)
        ports.add(r.json()["client_port"])
    assert len(ports) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422, 429])
async def test_a_services_4xx_passes_through_unchanged(setup: Setup, status: int) -> None:
    r = await setup.gateway.client.post(f"{API}/sessions/{uuid.uuid4()}/complete?x_status={status}",
                                        json={"outcome": "resolved"}, headers=setup.engineer.headers)
    assert r.status_code == status
    assert r.content == b'{"detail":"said the service",  "code":  7}'
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-service-says"] == "hello"
    assert r.headers["retry-after"] == "3"


async def test_204_comes_back_without_a_body(setup: Setup) -> None:
    r = await setup.gateway.client.delete(f"{API}/trees/{uuid.uuid4()}?x_status=204", headers=setup.admin.headers)
    assert r.status_code == 204 and r.content == b""


async def test_a_service_failure_is_reported_as_502_not_500(setup: Setup) -> None:
    r = await setup.gateway.client.get(f"{API}/handoffs/stats?x_status=500", headers=setup.viewer.headers)
    assert r.status_code == 502, r.text
    assert r.json() == {"detail": "the handoffs service failed", "code": "upstream_failed"}


async def test_a_service_that_is_down_gives_503_with_a_clear_detail(setup: Setup) -> None:
    r = await setup.gateway.client.get(f"{API}/analytics/flowpilot/escalations?period=7d",
                                       headers=setup.engineer.headers)
    assert r.status_code == 503
    assert r.json() == {"detail": "the analytics service is unavailable; try again shortly",
                        "code": "upstream_unavailable"}
    assert r.headers["retry-after"] == "1"


async def test_a_slow_service_gives_504_within_the_timeout(setup: Setup) -> None:
    request_id = uuid.uuid4().hex
    r = await setup.gateway.client.get(f"{API}/trees?x_sleep=5",
                                       headers={**setup.viewer.headers, "X-Request-ID": request_id})
    assert r.status_code == 504
    assert r.json() == {"detail": f"the sessions service did not answer within {TIMEOUT_S:g}s",
                        "code": "upstream_timeout"}
    # Answered by the gateway's deadline while the service was still busy, not when it finally answered.
    assert request_id not in setup.echo.finished


async def test_nothing_is_forwarded_without_authentication_or_the_role(setup: Setup) -> None:
    before = len(setup.echo.seen)
    assert (await setup.gateway.client.get(f"{API}/trees")).status_code == 401
    r = await setup.gateway.client.post(f"{API}/trees", json=TREE, headers=setup.viewer.headers)
    assert r.status_code == 403
    r = await setup.gateway.client.delete(f"{API}/trees/{uuid.uuid4()}", headers=setup.engineer.headers)
    assert r.status_code == 403
    r = await setup.gateway.client.get(f"{API}/analytics/flowpilot/escalations?period=7d",
                                       headers=setup.viewer.headers)
    assert r.status_code == 403
    assert len(setup.echo.seen) == before


async def test_invalid_input_is_refused_at_the_gateway_with_422(setup: Setup) -> None:
    before = len(setup.echo.seen)
    bad = [
        ("GET", f"{API}/trees?limit=0", None),
        ("POST", f"{API}/trees", {"title": "no nodes"}),
        ("POST", f"{API}/handoffs", {"session_id": str(uuid.uuid4()), "reason": "x", "priority": "asap"}),
    ]
    for method, url, body in bad:
        r = await setup.gateway.client.request(method, url, json=body, headers=setup.admin.headers)
        assert r.status_code == 422, (url, r.text)
    # An id that is no UUID names no resource: the path does not exist.
    r = await setup.gateway.client.get(f"{API}/trees/not-a-uuid", headers=setup.admin.headers)
    assert r.status_code == 404, r.text
    assert len(setup.echo.seen) == before


async def test_a_body_over_the_limit_gets_413_and_is_not_forwarded(setup: Setup) -> None:
    before = len(setup.echo.seen)
    big = {**TREE, "description": "x" * MAX_BODY}
    r = await setup.gateway.client.post(f"{API}/trees", json=big, headers=setup.engineer.headers)
    assert r.status_code == 413 and r.json() == {"detail": "request body too large", "code": "request_too_large"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(8):
            yield b"x" * (MAX_BODY // 4)

    r = await setup.gateway.client.post(f"{API}/trees", content=chunks(),
                                        headers={**setup.engineer.headers, "Content-Type": "application/json"})
    assert r.status_code == 413
    r = await setup.gateway.client.post(f"{API}/auth/register", content=chunks(),
                                        headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert len(setup.echo.seen) == before
