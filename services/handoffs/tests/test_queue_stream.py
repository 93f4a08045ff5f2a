"""The live queue at the handoffs service: two replicas on one database, resumption from the change log, resets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio

from handoffs.main import create_app
from handoffs.settings import Settings
from rfkit.auth import generate_keypair
from rfkit.sse_client import EventReader
from rfkit.testing import Caller, Served, unique_prefix

from .conftest import SessionsStandIn

STREAM = "/api/v1/handoffs/queue/stream"


@dataclass
class Replicas:
    """Two handoffs processes' apps on one database (A with the default ring, B with a ring of 2 changes)."""

    a: Served
    b: Served
    sessions: SessionsStandIn
    private_pem: str

    def account(self, role: str = "engineer") -> Caller:
        return Caller(self.private_pem, role=role)

    async def escalate(self, url: str, caller: Caller) -> dict[str, Any]:
        session_id = self.sessions.add(caller.account_id)
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.post("/api/v1/handoffs", headers=caller.headers,
                                  json={"session_id": str(session_id), "reason": "help", "priority": "high"})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def act(self, url: str, caller: Caller, handoff_id: str, action: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.post(f"/api/v1/handoffs/{handoff_id}/{action}", headers=caller.headers)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def detail(self, url: str, caller: Caller, handoff_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.get(f"/api/v1/handoffs/{handoff_id}", headers=caller.headers)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replicas(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[Replicas]:
    private_pem, public_pem = generate_keypair()
    standin = SessionsStandIn(public_pem)
    await standin.start()
    common: dict[str, Any] = {
        "env": "test", "database_url": make_session_database("handoffs"), "kafka_bootstrap": kafka_bootstrap,
        "topic_prefix": unique_prefix(), "jwt_public_key": public_pem, "sessions_url": standin.url,
        "outbox_poll_interval_s": 0.05,
    }
    try:
        async with Served(create_app(Settings(**common))) as a, \
                Served(create_app(Settings(**common, queue_stream_ring_size=2, queue_stream_heartbeat_s=0.5))) as b:
            yield Replicas(a, b, standin, private_pem)
    finally:
        await standin.stop()


async def _open(url: str, caller: Caller, **headers: str) -> tuple[httpx.AsyncClient, httpx.Response, EventReader]:
    client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=60))
    response = await client.send(client.build_request("GET", STREAM, headers={**caller.headers, **headers}),
                                 stream=True)
    return client, response, EventReader(response)


async def test_a_change_made_through_one_replica_reaches_a_stream_served_by_the_other(replicas: Replicas) -> None:
    caller = replicas.account("viewer")
    engineer = caller.colleague(replicas.private_pem)
    client, response, events = await _open(replicas.b.url, caller)
    try:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        handoff = await replicas.escalate(replicas.a.url, engineer)
        claimed = await replicas.act(replicas.a.url, engineer, handoff["id"], "claim")
        first, second = await events.next(), await events.next()
        assert first is not None and second is not None
        assert (first.event, first.id, second.event, second.id) == ("handoff", "1", "handoff", "2")
        assert second.json() == await replicas.detail(replicas.a.url, engineer, handoff["id"])
        assert second.json()["version"] == claimed["version"] and second.json()["status"] == "claimed"
    finally:
        await response.aclose()
        await client.aclose()
