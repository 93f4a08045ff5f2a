"""The kit's HTTP side: an unhandled error is a 500 that leaves the connection usable."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from fastapi import APIRouter, Request

from rf_testsupport import Served
from rfkit.web import build_app


def _app() -> object:
    router = APIRouter()
    ports: list[int] = []

    @router.get("/boom")
    async def boom(request: Request) -> None:
        ports.append(request.client.port if request.client else 0)
        raise RuntimeError("a bug")

    @router.get("/port")
    async def port(request: Request) -> dict[str, int]:
        return {"port": request.client.port if request.client else 0, "boom_port": ports[-1]}

    runtime = SimpleNamespace(settings=SimpleNamespace(service_name="test"), lifespan=None, verifier=None)
    return build_app(runtime, title="test", routers=[router])


async def test_an_unhandled_error_is_a_500_and_the_connection_stays_open() -> None:
    async with Served(_app(), lifespan="off") as served, httpx.AsyncClient(
        base_url=served.url, limits=httpx.Limits(max_connections=1)
    ) as client:
        failed = await client.get("/api/v1/boom")
        assert failed.status_code == 500 and failed.json() == {"detail": "internal error", "code": "internal_error"}
        assert failed.headers.get("connection") != "close" and failed.headers["x-request-id"]
        after = (await client.get("/api/v1/port")).json()
    # The same client port: the request after the failure went over the very same connection.
    assert after["port"] == after["boom_port"]


async def test_a_trailing_slash_is_not_redirected() -> None:
    async with Served(_app(), lifespan="off") as served, httpx.AsyncClient(base_url=served.url) as client:
        r = await client.get("/api/v1/port/", headers={"host": "evil.example.com"})
    assert r.status_code == 404 and "location" not in r.headers
