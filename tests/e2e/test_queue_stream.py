"""The live queue through the gateway: Server-Sent Events of the caller's account, resumable, ended at expiry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client import REGISTRY

from rf_testsupport import wait_until
from rf_testsupport.gateway import User
from rfkit.auth import issue_access_token
from rfkit.sse_client import Event, EventReader

from .conftest import API, Api, Stack

STREAM = API + "/handoffs/queue/stream"


@asynccontextmanager
async def stream(api: Api, token: str, **headers: str) -> AsyncIterator[EventReader]:
    """The caller's live queue, open (its first block read) before the block's body runs."""
    async with api.client.stream(
        "GET", STREAM, headers={"Authorization": f"Bearer {token}", **headers}, timeout=httpx.Timeout(30, read=60)
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = EventReader(response)
        await events.opened()
        yield events


async def until(events: EventReader, handoff_id: str, status: str) -> list[Event]:
    """The events up to the one that shows `handoff_id` in `status` (each one is checked to be a handoff event)."""
    seen = []
    while True:
        event = await events.next()
        assert event is not None, "the stream ended"
        assert event.event == "handoff", event
        seen.append(event)
        if event.json()["id"] == handoff_id and event.json()["status"] == status:
            return seen


def ids(events: list[Event]) -> list[int]:
    return [int(e.id or "0") for e in events]


async def test_a_client_connected_before_a_claim_receives_it(api: Api) -> None:
    team = await api.account("engineer", "viewer")
    engineer = team.role("engineer")
    async with stream(api, team.role("viewer").access) as events:
        handoff = await api.handoff(engineer)
        claimed = await api.ok("POST", f"/handoffs/{handoff['id']}/claim", engineer)
        seen = await until(events, handoff["id"], "claimed")
    assert ids(seen) == list(range(ids(seen)[0], ids(seen)[0] + len(seen))), "ids grow by one per change"
    shown = seen[-1].json()
    assert shown == await api.ok("GET", f"/handoffs/{handoff['id']}", engineer)  # as GET /handoffs/{id} shows it
    assert shown["claimed_by"] == claimed["claimed_by"] == engineer.id
    assert [h["action"] for h in shown["history"]] == ["requested", "claimed"]


async def test_a_client_that_reconnects_with_last_event_id_receives_what_it_missed_once(api: Api) -> None:
    team = await api.account("engineer")
    engineer = team.role("engineer")
    async with stream(api, engineer.access) as events:
        handoff = await api.handoff(engineer)
        last = (await until(events, handoff["id"], "open"))[-1]
    # While the client is away: a claim and a release.
    await api.ok("POST", f"/handoffs/{handoff['id']}/claim", engineer)
    await api.ok("POST", f"/handoffs/{handoff['id']}/release", engineer)
    async with stream(api, engineer.access, **{"Last-Event-ID": last.id or ""}) as events:
        missed = [await events.next(), await events.next()]
        await api.ok("POST", f"/handoffs/{handoff['id']}/claim", engineer)
        live = await until(events, handoff["id"], "claimed")
    received = [e for e in [*missed, *live] if e is not None]
    start = int(last.id or "0")
    assert ids(received) == [start + 1, start + 2, start + 3]
    assert [e.json()["id"] for e in received] == [handoff["id"]] * 3
    assert received[-1].json()["version"] == 4


async def test_the_query_parameter_resumes_too_and_a_malformed_id_is_refused(api: Api) -> None:
    team = await api.account("engineer")
    engineer = team.role("engineer")
    first = await api.handoff(engineer)
    second = await api.handoff(engineer)
    # The account's first change is id 1: resuming after it gives the second escalation (and nothing before).
    async with api.client.stream("GET", STREAM + "?last_event_id=1", headers=engineer.headers) as response:
        events = EventReader(response)
        event = await events.next()
    assert event is not None and event.id == "2" and event.json()["id"] == second["id"] != first["id"]
    for bad in ("x", "-1", "1.5", str(2**63), "\u0661", "1e3", "1 2"):
        r = await api.call("GET", "/handoffs/queue/stream", engineer, headers={"Last-Event-ID": bad.encode()})
        assert r.status_code == 422, (bad, r.status_code, r.text)
        r = await api.call("GET", "/handoffs/queue/stream", engineer, params={"last_event_id": bad})
        assert r.status_code == 422, (bad, r.status_code, r.text)
    r = await api.call("GET", "/handoffs/queue/stream")
    assert r.status_code == 401


async def test_an_account_never_sees_another_accounts_handoffs(api: Api) -> None:
    a, b = await api.account("engineer"), await api.account("engineer")
    async with stream(api, a.admin.access) as a_events, stream(api, b.admin.access) as b_events:
        theirs = await api.handoff(a.role("engineer"))
        await api.ok("POST", f"/handoffs/{theirs['id']}/claim", a.role("engineer"))
        a_seen = await until(a_events, theirs["id"], "claimed")
        ours = await api.handoff(b.role("engineer"))  # B's own change comes after A's on B's stream, if A's did
        b_seen = await until(b_events, ours["id"], "open")
    assert {e.json()["account_id"] for e in a_seen} == {a.id}
    assert {e.json()["account_id"] for e in b_seen} == {b.id}
    assert theirs["id"] not in {e.json()["id"] for e in b_seen}


async def test_the_stream_ends_when_the_token_expires(api: Api, stack: Stack) -> None:
    team = await api.account("viewer")
    viewer: User = team.role("viewer")
    short = issue_access_token(
        stack.private_pem, user_id=uuid.UUID(viewer.id), account_id=uuid.UUID(viewer.account_id), role="viewer",
        issuer="resolutionflow-gateway", audience="resolutionflow", ttl_s=3,
    )
    async with stream(api, short) as events:
        rest: list[Any] = await events.until_end(timeout_s=60)
    assert events.ended and rest == []
    r = await api.client.get(STREAM, headers={"Authorization": f"Bearer {short}"})
    assert r.status_code == 401


def open_streams() -> tuple[float, float]:
    """Streams open at the gateway and at the handoffs service (the stack runs in this process)."""
    gateway = REGISTRY.get_sample_value("rf_gateway_streams_open") or 0.0
    handoffs = REGISTRY.get_sample_value("rf_queue_streams_open", {"service": "handoffs"}) or 0.0
    return gateway, handoffs


async def test_a_client_going_away_closes_the_stream_at_the_gateway_and_at_the_service(api: Api) -> None:
    team = await api.account()
    before = open_streams()
    async with stream(api, team.admin.access):
        async def both_open() -> bool:
            return open_streams() == (before[0] + 1, before[1] + 1)

        await wait_until(both_open)
    # The client closed its connection: the gateway drops its relay and closes its connection to the service.

    async def both_closed() -> bool:
        return open_streams() == before

    await wait_until(both_closed)
