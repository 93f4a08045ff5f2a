"""The queue: order, filters, pagination, and the stat card against a hand-computed queue."""

from __future__ import annotations

import statistics
import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def queue(service, caller, **params) -> dict:
    r = await service.client.get("/api/v1/handoffs", params=params, headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()


def ids(page: dict) -> list[str]:
    return [h["id"] for h in page["items"]]


async def test_queue_is_ordered_by_priority_then_oldest_first_and_paginated(service) -> None:
    me = service.account()
    low = await service.escalate(me, priority="low")
    urgent_old = await service.escalate(me, priority="urgent")
    normal = await service.escalate(me, priority="normal")
    urgent_new = await service.escalate(me, priority="urgent")
    high = await service.escalate(me, priority="high")
    expected = [urgent_old["id"], urgent_new["id"], high["id"], normal["id"], low["id"]]

    whole = await queue(service, me)
    assert ids(whole) == expected and whole["total"] == 5 and whole["limit"] == 50 and whole["offset"] == 0

    pages = [await queue(service, me, limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [ids(p) for p in pages] == [expected[0:2], expected[2:4], expected[4:]]
    assert all(p["total"] == 5 and p["limit"] == 2 for p in pages)
    assert ids(await queue(service, me, limit=2, offset=10)) == []


async def test_queue_filters_by_status_released_and_mine(service) -> None:
    me = service.account()
    colleague = service.colleague(me)
    admin = service.colleague(me, role="admin")
    untouched = await service.escalate(me, priority="urgent")
    mine = await service.escalate(me, priority="high")
    theirs = await service.escalate(me, priority="normal")
    released = await service.escalate(me, priority="low")
    closed = await service.escalate(me, priority="low")
    await service.act(me, mine["id"], "claim")
    await service.act(colleague, theirs["id"], "claim")
    await service.act(me, released["id"], "claim")
    await service.act(me, released["id"], "release")
    await service.act(admin, closed["id"], "resolve")

    assert ids(await queue(service, me, status="open")) == [untouched["id"], released["id"]]
    assert ids(await queue(service, me, status="claimed")) == [mine["id"], theirs["id"]]
    assert ids(await queue(service, me, status="released")) == [released["id"]]
    assert ids(await queue(service, me, status="resolved")) == [closed["id"]]
    assert ids(await queue(service, me, mine="true")) == [mine["id"]]
    assert ids(await queue(service, colleague, mine="true", status="claimed")) == [theirs["id"]]
    assert ids(await queue(service, admin, mine="true")) == []

    # Claimed again after its release, it is no longer "released".
    await service.act(colleague, released["id"], "claim")
    assert ids(await queue(service, me, status="released")) == []


@pytest.mark.parametrize(
    "params",
    [{"status": "pending"}, {"limit": 0}, {"limit": 201}, {"offset": -1}, {"mine": "perhaps"}],
)
async def test_bad_queue_parameters_are_422(service, params: dict) -> None:
    me = service.account()
    r = await service.client.get("/api/v1/handoffs", params=params, headers=me.headers)
    assert r.status_code == 422


async def test_stats_of_an_empty_queue(service) -> None:
    me = service.account(role="viewer")
    r = await service.client.get("/api/v1/handoffs/stats", headers=me.headers)
    assert r.status_code == 200
    assert r.json() == {
        "open": 0,
        "claimed": 0,
        "oldest_open_age_seconds": None,
        "median_wait_to_claim_seconds_24h": None,
    }


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_stats_match_a_hand_computed_queue(service) -> None:
    me = service.account()
    other = service.colleague(me)
    admin = service.colleague(me, role="admin")

    oldest_open = await service.escalate(me, priority="low")  # never claimed
    released = await service.escalate(me)  # claimed, released: open again, its claim still counts
    claimed = await service.escalate(me, priority="high")  # claimed
    resolved = await service.escalate(me)  # claimed, resolved
    stale = await service.escalate(me)  # claimed more than 24 h ago: claimed, but not in the median
    never = await service.escalate(me)  # resolved by an admin without a claim

    claims = {}
    for h, who in ((released, me), (claimed, other), (resolved, me), (stale, other)):
        r = await service.act(who, h["id"], "claim")
        claims[h["id"]] = at(r.json()["claimed_at"])
    await service.act(me, released["id"], "release")
    await service.act(me, resolved["id"], "resolve")
    await service.act(admin, never["id"], "resolve")
    # Move the stale handoff back in time as if it had been requested 30 h and claimed 25 h ago.
    now = datetime.now(UTC)
    sid = uuid.UUID(stale["id"])
    await service.scalar(
        "UPDATE handoffs SET requested_at = :req, claimed_at = :cl WHERE id = :id",
        req=now - timedelta(hours=30),
        cl=now - timedelta(hours=25),
        id=sid,
    )
    await service.scalar(
        "UPDATE handoff_history SET at = CASE action WHEN 'requested' THEN CAST(:req AS timestamptz) "
        "ELSE CAST(:cl AS timestamptz) END WHERE handoff_id = :id",
        req=now - timedelta(hours=30),
        cl=now - timedelta(hours=25),
        id=sid,
    )

    waits = [(claims[h["id"]] - at(h["requested_at"])).total_seconds() for h in (released, claimed, resolved)]
    before = datetime.now(UTC)
    r = await service.client.get("/api/v1/handoffs/stats", headers=me.headers)
    after = datetime.now(UTC)

    assert r.status_code == 200
    stats = r.json()
    assert stats["open"] == 2  # oldest_open, released
    assert stats["claimed"] == 2  # claimed, stale
    requested = at(oldest_open["requested_at"])
    assert (before - requested).total_seconds() <= stats["oldest_open_age_seconds"]
    assert stats["oldest_open_age_seconds"] <= (after - requested).total_seconds()
    assert stats["median_wait_to_claim_seconds_24h"] == pytest.approx(statistics.median(waits), abs=1e-6)


async def test_openapi_lists_the_route_table(service) -> None:
    schema = (await service.client.get("/openapi.json")).json()
    routes = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert {
        ("POST", "/api/v1/handoffs"),
        ("GET", "/api/v1/handoffs"),
        ("GET", "/api/v1/handoffs/stats"),
        ("GET", "/api/v1/handoffs/{handoff_id}"),
        ("POST", "/api/v1/handoffs/{handoff_id}/claim"),
        ("POST", "/api/v1/handoffs/{handoff_id}/release"),
        ("POST", "/api/v1/handoffs/{handoff_id}/resolve"),
    } <= routes
