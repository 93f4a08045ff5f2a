"""One request's failure at a service never fails the requests sent after it (real uvicorn, real pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request, Response

from gateway.upstream import UpstreamPool
from rf_testsupport import Served

INNOCENT = 20


def _service() -> FastAPI:
    """A bare FastAPI service (not the kit's) failing in the two ways a server can after a 500."""
    app = FastAPI()

    @app.post("/fail-and-say-close")
    async def fail_and_say_close() -> Response:
        return Response(b'{"detail":"failed"}', status_code=500, headers={"Connection": "close"})

    @app.post("/crash")
    async def crash() -> Response:
        # Starlette answers 500 and re-raises; uvicorn then closes the connection without announcing it.
        raise RuntimeError("boom")

    @app.post("/innocent")
    async def innocent(request: Request) -> Response:
        return Response(await request.body(), status_code=201, media_type="application/json")

    return app


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    async with Served(_service(), lifespan="off") as served:
        host, port = served.url.removeprefix("http://").split(":")
        pool = UpstreamPool(host, int(port), max_connections=4, connect_timeout_s=5)
        try:
            yield pool
        finally:
            pool.close()


async def _post(pool: UpstreamPool, path: bytes, body: bytes) -> int:
    answer = await pool.request(b"POST", path, [(b"content-type", b"application/json")], body)
    assert answer.status != 201 or answer.body == body
    return answer.status


@pytest.mark.parametrize("failure", [b"/fail-and-say-close", b"/crash"])
async def test_after_an_upstream_500_twenty_innocent_posts_all_succeed(pool: UpstreamPool, failure: bytes) -> None:
    # Warm the pool so that its connections are kept alive and reused, the case that used to break.
    assert await asyncio.gather(*(_post(pool, b"/innocent", b"{}") for _ in range(4))) == [201] * 4
    for round_ in range(3):
        statuses = await asyncio.gather(
            _post(pool, failure, b"{}"),
            *(_post(pool, b"/innocent", b'{"n": %d}' % i) for i in range(INNOCENT)),
        )
        assert statuses[0] == 500, round_
        assert statuses[1:] == [201] * INNOCENT, round_
        # And one after another, each on whatever the pool holds right after the failure.
        assert await _post(pool, failure, b"{}") == 500
        assert [await _post(pool, b"/innocent", b'{"n": %d}' % i) for i in range(INNOCENT)] == [201] * INNOCENT
