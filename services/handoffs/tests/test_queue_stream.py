"""The live queue at the handoffs service: two replicas on one database, resumption from the change log, resets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa

from handoffs.main import create_app
from handoffs.settings import Settings
from rf_testsupport import Caller, Served, unique_prefix
from rfkit.auth import generate_keypair
from rfkit.sse_client import EventReader

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
        await events.opened()
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


async def test_concurrent_changes_through_both_replicas_arrive_once_each_in_id_order(replicas: Replicas) -> None:
    caller = replicas.account()
    client, response, events = await _open(replicas.a.url, caller)
    try:
        await events.opened()
        urls = [replicas.a.url, replicas.b.url] * 4
        handoffs = await asyncio.gather(*(replicas.escalate(url, caller) for url in urls))
        pairs = zip(urls, handoffs, strict=True)
        await asyncio.gather(*(replicas.act(url, caller, h["id"], "claim") for url, h in pairs))
        received = [await events.next() for _ in range(2 * len(handoffs))]
    finally:
        await response.aclose()
        await client.aclose()
    assert [e.id for e in received if e] == [str(i) for i in range(1, 2 * len(handoffs) + 1)]
    by_handoff: dict[str, int] = {}
    for event in received:
        assert event is not None
        by_handoff[event.json()["id"]] = by_handoff.get(event.json()["id"], 0) + 1
    assert by_handoff == {h["id"]: 2 for h in handoffs}


async def test_a_client_further_behind_than_the_ring_reads_the_change_log(replicas: Replicas) -> None:
    """B keeps 2 changes per account in memory: resuming 5 changes back is served from the table, in order."""
    caller = replicas.account()
    watcher_client, watcher, live = await _open(replicas.b.url, caller)  # keeps the account's feed (ring) alive
    try:
        await live.opened()
        made = [await replicas.escalate(replicas.a.url, caller) for _ in range(5)]
        assert [(await live.next()).id for _ in made] == ["1", "2", "3", "4", "5"]  # type: ignore[union-attr]
        client, response, events = await _open(replicas.b.url, caller, **{"Last-Event-ID": "0"})
        try:
            resumed = [await events.next() for _ in made]
        finally:
            await response.aclose()
            await client.aclose()
    finally:
        await watcher.aclose()
        await watcher_client.aclose()
    assert [(e.id, e.json()["id"]) for e in resumed if e] == [(str(i + 1), h["id"]) for i, h in enumerate(made)]


async def test_resuming_from_changes_no_longer_kept_is_a_reset_then_the_stream_goes_on(replicas: Replicas) -> None:
    caller = replicas.account()
    for _ in range(3):
        await replicas.escalate(replicas.a.url, caller)
    live = replicas.a.app.state.live_queue
    async with live.db.unit_of_work() as uow:  # as if two hours had passed for the first two changes
        await uow.session.execute(sa.text(
            "UPDATE handoff_changes SET at = now() - interval '3 hours' WHERE account_id = :a AND id <= 2"),
            {"a": caller.account_id})
    assert await live.purge() >= 2
    client, response, events = await _open(replicas.a.url, caller, **{"Last-Event-ID": "0"})
    try:
        reset, kept = await events.next(), await events.next()
        later = await replicas.escalate(replicas.a.url, caller)
        after = await events.next()
    finally:
        await response.aclose()
        await client.aclose()
    assert reset is not None and reset.event == "reset" and reset.id == "2"
    assert kept is not None and kept.id == "3"
    assert after is not None and after.id == "4" and after.json()["id"] == later["id"]


async def test_silence_is_broken_by_comment_lines_and_bad_resumption_ids_are_refused(replicas: Replicas) -> None:
    caller = replicas.account("viewer")
    client, response, events = await _open(replicas.b.url, caller)  # B: a heartbeat after 0.5 s of silence
    try:
        await events.opened()
        assert await events.comment() == "keep-alive"
    finally:
        await response.aclose()
        await client.aclose()
    async with httpx.AsyncClient(base_url=replicas.a.url) as plain:
        r = await plain.get(STREAM, headers={**caller.headers, "Last-Event-ID": "abc"})
        assert r.status_code == 422 and r.json()["code"] == "invalid_last_event_id"
        r = await plain.get(STREAM + "?last_event_id=-1", headers=caller.headers)
        assert r.status_code == 422
