"""The Idempotency-Key middleware against a real PostgreSQL: what is kept, for how long, and who waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rf_testsupport import new_database
from rfkit.db import Database
from rfkit.idempotency import Idempotency
from rfkit.tables import idempotency_keys, kit_metadata


@dataclass
class Work:
    """A route that counts its calls; it answers `statuses` in turn (then 201) and may be held until released."""

    calls: int = 0
    statuses: list[int] = field(default_factory=list)
    hold: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def endpoint(self, request: Request) -> JSONResponse:
        self.calls += 1
        self.started.set()
        body = await request.body()
        if self.hold is not None:
            await self.hold.wait()
        status = self.statuses.pop(0) if self.statuses else 201
        return JSONResponse({"call": self.calls, "echo": json.loads(body or b"null")}, status_code=status,
                            headers={"ETag": f'"e-{self.calls}"', "X-Other": "not kept"})


@dataclass
class Env:
    db: Database
    work: Work
    middleware: Idempotency
    client: httpx.AsyncClient

    async def post(self, key: str | None, body: Any = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return await self.client.post("/api/v1/things", json=body or {"n": 1}, headers=headers)

    async def rows(self) -> list[Any]:
        async with self.db.engine.begin() as conn:
            return list((await conn.execute(sa.select(idempotency_keys))).all())


def _env(db: Database, work: Work, **options: Any) -> tuple[Idempotency, httpx.AsyncClient]:
    app = Starlette(routes=[Route("/api/v1/things", work.endpoint, methods=["POST"])])
    # What the middleware needs of the service: its database, and no token verifier (callers by address).
    owner = SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(db=db), verifier=None))
    middleware = Idempotency(app, owner=owner, paths=["/api/v1/things"], **options)
    return middleware, httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://test")


@pytest_asyncio.fixture
async def env(make_database: Any) -> AsyncIterator[Env]:
    db = Database(await new_database(make_database), pool_size=4)
    async with db.engine.begin() as conn:
        await conn.run_sync(kit_metadata.create_all)
    work = Work()
    middleware, client = _env(db, work, wait_s=0.5, poll_s=0.02, purge_every_s=0)
    try:
        yield Env(db, work, middleware, client)
    finally:
        await client.aclose()
        await db.dispose()


async def test_the_first_answer_is_replayed_with_its_kept_headers(env: Env) -> None:
    first = await env.post("k1")
    again = await env.post("k1")
    assert (first.status_code, again.status_code, env.work.calls) == (201, 201, 1)
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"] == '"e-1"'
    assert again.headers["idempotent-replayed"] == "true" and "x-other" not in again.headers
    assert (await env.post(None)).json()["call"] == 2  # without a key: done again


async def test_a_5xx_is_not_kept_and_the_key_can_be_retried(env: Env) -> None:
    env.work.statuses = [503, 429]
    assert (await env.post("k")).status_code == 503
    assert await env.rows() == []
    assert (await env.post("k")).status_code == 429  # depends on the moment: not kept either
    retried = await env.post("k")
    assert (retried.status_code, retried.json()["call"], env.work.calls) == (201, 3, 3)
    assert (await env.post("k")).json()["call"] == 3


async def test_a_4xx_answer_is_kept_like_any_other(env: Env) -> None:
    env.work.statuses = [409]
    assert (await env.post("k")).status_code == 409
    assert (await env.post("k")).status_code == 409 and env.work.calls == 1


async def test_another_body_with_the_same_key_is_422(env: Env) -> None:
    await env.post("k", {"n": 1})
    r = await env.post("k", {"n": 2})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused" and env.work.calls == 1


async def test_a_repeat_of_a_running_request_waits_then_gets_409(env: Env) -> None:
    env.work.hold = asyncio.Event()
    first = asyncio.create_task(env.post("k"))
    await asyncio.wait_for(env.work.started.wait(), 10)
    busy = await env.post("k")  # waits wait_s (0.5 s), then gives up
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_progress"
    assert busy.headers["retry-after"] == "1"
    waiting = asyncio.create_task(env.post("k"))
    env.work.hold.set()
    assert (await first).status_code == 201
    replay = await waiting
    assert replay.content == (await first).content and env.work.calls == 1


async def test_an_abandoned_attempt_is_taken_over_after_its_lease(env: Env) -> None:
    async with env.db.engine.begin() as conn:
        await conn.execute(sa.insert(idempotency_keys).values(
            account_id="00000000-0000-0000-0000-000000000000", caller="address:127.0.0.1",
            request="POST /api/v1/things", key="k", fingerprint=b"?", owner="11111111-1111-1111-1111-111111111111",
        ))
    # Its fingerprint differs: a live attempt with another body is 422 whatever its age.
    assert (await env.post("k")).status_code == 422
    await env.post("k2")
    async with env.db.engine.begin() as conn:
        fingerprint = (await conn.execute(sa.select(idempotency_keys.c.fingerprint)
                                          .where(idempotency_keys.c.key == "k2"))).scalar_one()
        await conn.execute(sa.update(idempotency_keys).where(idempotency_keys.c.key == "k").values(
            fingerprint=fingerprint, started_at=sa.func.now() - sa.text("interval '2 minutes'")))
    taken = await env.post("k")
    assert taken.status_code == 201 and taken.json()["call"] == 2


async def test_a_key_older_than_a_day_is_ignored_and_purged(env: Env) -> None:
    await env.post("old")
    await env.post("other")
    async with env.db.engine.begin() as conn:
        await conn.execute(sa.update(idempotency_keys).values(
            created_at=sa.func.now() - sa.text("interval '25 hours'")))
    again = await env.post("old")
    assert again.json()["call"] == 3 and "idempotent-replayed" not in again.headers
    assert sorted(row.key for row in await env.rows()) == ["old"]  # "other" purged, "old" afresh


async def test_with_a_secret_the_stored_answer_is_sealed(make_database: Any) -> None:
    db = Database(await new_database(make_database), pool_size=2)
    async with db.engine.begin() as conn:
        await conn.run_sync(kit_metadata.create_all)
    work = Work()
    _, client = _env(db, work, secret=b"s" * 32)
    try:
        login = {"json": {"password": "hunter2-secret"}, "headers": {"Idempotency-Key": "k"}}
        first = await client.post("/api/v1/things", **login)
        again = await client.post("/api/v1/things", **login)
        assert again.content == first.content and work.calls == 1
        async with db.engine.begin() as conn:
            stored = (await conn.execute(sa.select(idempotency_keys.c.body))).scalar_one()
        assert b"hunter2-secret" in first.content and b"hunter2-secret" not in stored
    finally:
        await client.aclose()
        await db.dispose()


async def test_a_malformed_key_is_422(env: Env) -> None:
    for bad in ("", "a b", "x" * 256, "ключ"):
        r = await env.client.post("/api/v1/things", json={}, headers={"Idempotency-Key": bad.encode()})
        assert r.status_code == 422 and r.json()["code"] == "idempotency_key_invalid", bad
    assert env.work.calls == 0


def test_the_middleware_never_shows_its_secret() -> None:
    # The secret seals stored answers that hold passwords and tokens: a log line or a traceback that prints the
    # middleware must not print it.
    secret = b"do-not-print-this-secret"
    middleware = Idempotency(Starlette(), owner=None, paths=["/api/v1/things"], secret=secret)
    assert secret.decode() not in repr(middleware)
    assert secret.decode() not in str(middleware)
