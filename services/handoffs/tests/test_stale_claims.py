"""Stale claims: the per-account policy, the detector (two replicas on one database), steps keeping claims fresh."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from handoffs import metrics
from handoffs.consumers import STEP_CREATED_CONSUMER
from rf_contracts import topics
from rf_testsupport import Caller, produce, step_event, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

MINUTE = timedelta(seconds=60)


@pytest_asyncio.fixture(loop_scope="session")
async def svc(two_replicas: Any) -> Any:
    """The two-replica service with its clock back at the real time (each test moves it itself)."""
    two_replicas.clock.offset = timedelta(0)
    return two_replicas


async def set_policy(svc: Any, admin: Caller, stale_after_seconds: int | None, auto_release: bool) -> None:
    r = await svc.client.put(
        "/api/v1/handoffs/policy",
        json={"stale_after_seconds": stale_after_seconds, "auto_release": auto_release},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text


async def claimed(svc: Any, admin: Caller) -> dict:
    """A handoff of the admin's account, claimed by a colleague engineer."""
    handoff = await svc.escalate(admin)
    r = await svc.act(svc.colleague(admin), handoff["id"], "claim")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def detail(svc: Any, caller: Caller, handoff_id: str) -> dict:
    r = await svc.client.get(f"/api/v1/handoffs/{handoff_id}", headers=caller.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def until(svc: Any, caller: Caller, handoff_id: str, **expected: Any) -> dict:
    """Poll the handoff until the given fields have the given values; returns it."""
    seen: dict = {}

    async def matches() -> bool:
        seen.update(await detail(svc, caller, handoff_id))
        return all(seen[k] == v for k, v in expected.items())

    await wait_until(matches)
    return seen


async def one_pass_each(svc: Any) -> set[uuid.UUID]:
    """Run a pass of every replica's detector at once; the handoff ids they marked (each at most once)."""
    results = await asyncio.gather(*(d.run_once() for d in svc.detectors))
    marked = [claim.handoff_id for found in results for claim in found]
    assert len(marked) == len(set(marked))
    return set(marked)


async def steps(svc: Any, account_id: uuid.UUID, *at: tuple[str, datetime]) -> None:
    """Publish steps (session id, created_at) as the sessions service would; wait until handoffs applied them."""
    events = [step_event(account_id=account_id, session_id=uuid.UUID(session_id), created_at=created_at)
              for session_id, created_at in at]
    await produce(svc.bootstrap, svc.prefix + topics.STEP_CREATED, [(e.key(), e.to_json()) for e in events])

    async def applied() -> bool:
        n = await svc.scalar(
            "SELECT count(*) FROM processed_events WHERE consumer = :c AND event_id = ANY(:ids)",
            c=STEP_CREATED_CONSUMER,
            ids=[e.event_id for e in events],
        )
        return n == len(events)

    await wait_until(applied)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_claim_without_a_step_becomes_stale_once_and_says_so_once(svc: Any) -> None:
    admin = svc.account("admin")
    await set_policy(svc, admin, 60, auto_release=False)
    h = await claimed(svc, admin)
    assert uuid.UUID(h["id"]) not in await one_pass_each(svc)  # the deadline has not come yet
    found_before = metrics.STALE_CLAIMS_FOUND.labels("handoffs")._value.get()

    svc.clock.offset = MINUTE + timedelta(seconds=1)
    stale = await until(svc, admin, h["id"], stale=True)

    assert stale["status"] == "claimed" and stale["claimed_by"] == h["claimed_by"]
    assert ts(stale["stale_since"]) == ts(h["claimed_at"]) + MINUTE
    assert stale["version"] == h["version"] + 1
    mark = stale["history"][-1]
    assert (mark["action"], mark["actor_type"], mark["actor_id"], mark["version"]) == (
        "stale", "system", None, stale["version"],
    )
    assert uuid.UUID(h["id"]) not in await one_pass_each(svc)  # once per claim, whatever the passes
    queue = await svc.client.get("/api/v1/handoffs?status=claimed", headers=admin.headers)
    assert [(i["id"], i["stale"]) for i in queue.json()["items"]] == [(h["id"], True)]
    assert metrics.STALE_CLAIMS_FOUND.labels("handoffs")._value.get() >= found_before + 1

    events = await svc.events(topics.HANDOFF_STALE, handoff_id=h["id"])
    assert len(events) == 1
    event = events[0]
    assert event["event_type"] == "handoff.stale" and event["_key"] == h["session_id"]
    assert (event["version"], event["claimed_by"], ts(event["claimed_at"])) == (
        stale["version"], h["claimed_by"], ts(h["claimed_at"]),
    )
    assert await svc.events(topics.HANDOFF_RELEASED, handoff_id=h["id"]) == []

    # A step that arrives after the mark undoes nothing: the claim stays stale, the event stays the only one.
    await steps(svc, admin.account_id, (h["session_id"], ts(h["claimed_at"]) + timedelta(seconds=10)))
    assert uuid.UUID(h["id"]) not in await one_pass_each(svc)
    after = await detail(svc, admin, h["id"])
    assert (after["stale"], after["version"]) == (True, stale["version"])
    assert len(await svc.events(topics.HANDOFF_STALE, handoff_id=h["id"])) == 1


async def test_auto_release_puts_a_stale_claim_back_in_the_queue_as_the_system(svc: Any) -> None:
    admin = svc.account("admin")
    await set_policy(svc, admin, 60, auto_release=True)
    h = await claimed(svc, admin)

    svc.clock.offset = MINUTE + timedelta(seconds=1)
    released = await until(svc, admin, h["id"], status="open")

    assert (released["last_action"], released["claimed_by"], released["stale"]) == ("released", None, False)
    assert [(e["action"], e["actor_type"], e["actor_id"], e["note"]) for e in released["history"][-2:]] == [
        ("stale", "system", None, None),
        ("released", "system", None, "stale"),
    ]
    stale_events = await svc.events(topics.HANDOFF_STALE, handoff_id=h["id"])
    released_events = await svc.events(topics.HANDOFF_RELEASED, handoff_id=h["id"])
    assert [e["version"] for e in stale_events] == [h["version"] + 1]
    assert [(e["version"], e["released_by"]) for e in released_events] == [(h["version"] + 2, None)]

    # A new claim is a new claim: it can go stale in its turn.
    again = await svc.act(svc.colleague(admin), h["id"], "claim")
    assert again.status_code == 200, again.text
    await until(svc, admin, h["id"], status="open", version=again.json()["version"] + 2)
    assert len(await svc.events(topics.HANDOFF_STALE, handoff_id=h["id"])) == 2


async def test_a_step_since_the_claim_keeps_it_fresh_whatever_the_order(svc: Any) -> None:
    admin = svc.account("admin")
    await set_policy(svc, admin, 60, auto_release=True)
    # Its step arrives before the claim is made, stamped later by the sessions service's clock.
    early = await svc.escalate(admin)
    await steps(svc, admin.account_id, (early["session_id"], datetime.now(UTC) + timedelta(seconds=30)))
    r = await svc.act(svc.colleague(admin), early["id"], "claim")
    assert r.status_code == 200, r.text
    early = r.json()
    # A step within the minute after the claim.
    busy = await claimed(svc, admin)
    # Only a step older than the claim: it does not count.
    idle = await claimed(svc, admin)
    await steps(
        svc,
        admin.account_id,
        (busy["session_id"], ts(busy["claimed_at"]) + timedelta(seconds=5)),
        (idle["session_id"], ts(idle["claimed_at"]) - timedelta(seconds=5)),
    )

    svc.clock.offset = 2 * MINUTE
    await until(svc, admin, idle["id"], status="open")
    await one_pass_each(svc)  # a whole pass past every deadline
    for fresh in (early, busy):
        now = await detail(svc, admin, fresh["id"])
        assert (now["status"], now["stale"], now["version"]) == ("claimed", False, fresh["version"])
        assert await svc.events(topics.HANDOFF_STALE, handoff_id=fresh["id"]) == []


async def test_two_replicas_mark_each_claim_once(svc: Any) -> None:
    admin = svc.account("admin")
    await set_policy(svc, admin, 60, auto_release=False)
    handoffs = [await claimed(svc, admin) for _ in range(6)]

    svc.clock.offset = MINUTE + timedelta(seconds=1)
    await one_pass_each(svc)  # both at once, besides their own background passes
    for h in handoffs:
        await until(svc, admin, h["id"], stale=True)
    await one_pass_each(svc)

    for h in handoffs:
        history = (await detail(svc, admin, h["id"]))["history"]
        assert [e["action"] for e in history] == ["requested", "claimed", "stale"]
        assert len(await svc.events(topics.HANDOFF_STALE, handoff_id=h["id"])) == 1


async def test_a_policy_change_applies_to_claims_already_running(svc: Any) -> None:
    admin = svc.account("admin")
    await set_policy(svc, admin, 3600, auto_release=False)
    h = await claimed(svc, admin)
    svc.clock.offset = 2 * MINUTE
    assert uuid.UUID(h["id"]) not in await one_pass_each(svc)  # an hour has not passed

    await set_policy(svc, admin, 60, auto_release=True)
    await until(svc, admin, h["id"], status="open", last_action="released")
    assert len(await svc.events(topics.HANDOFF_STALE, handoff_id=h["id"])) == 1


async def test_without_a_policy_no_claim_goes_stale(svc: Any) -> None:
    admin = svc.account("admin")
    r = await svc.client.get("/api/v1/handoffs/policy", headers=svc.colleague(admin).headers)
    assert (r.status_code, r.json()) == (200, {"stale_after_seconds": None, "auto_release": False})
    h = await claimed(svc, admin)
    svc.clock.offset = timedelta(days=365)
    assert uuid.UUID(h["id"]) not in await one_pass_each(svc)
    assert (await detail(svc, admin, h["id"]))["stale"] is False


async def test_policy_is_read_by_engineers_and_written_by_admins(svc: Any) -> None:
    admin = svc.account("admin")
    engineer, viewer = svc.colleague(admin), svc.colleague(admin, role="viewer")
    body = {"stale_after_seconds": 900, "auto_release": True}
    for caller in (engineer, viewer):
        r = await svc.client.put("/api/v1/handoffs/policy", json=body, headers=caller.headers)
        assert r.status_code == 403, r.text
    r = await svc.client.get("/api/v1/handoffs/policy", headers=viewer.headers)
    assert r.status_code == 403, r.text

    r = await svc.client.put("/api/v1/handoffs/policy", json=body, headers=admin.headers)
    assert (r.status_code, r.json()) == (200, body)
    r = await svc.client.get("/api/v1/handoffs/policy", headers=engineer.headers)
    assert (r.status_code, r.json()) == (200, body)
    # Another account sees only its own (the default).
    other = svc.account("engineer")
    r = await svc.client.get("/api/v1/handoffs/policy", headers=other.headers)
    assert r.json() == {"stale_after_seconds": None, "auto_release": False}


@pytest.mark.parametrize(
    "body",
    [
        {"stale_after_seconds": 59, "auto_release": False},
        {"stale_after_seconds": 0, "auto_release": False},
        {"stale_after_seconds": -60, "auto_release": False},
        {"stale_after_seconds": 10**12, "auto_release": False},
        {"stale_after_seconds": "600", "auto_release": False},
        {"stale_after_seconds": 600.5, "auto_release": False},
        {"stale_after_seconds": True, "auto_release": False},
        {"stale_after_seconds": 600, "auto_release": "yes"},
        {"stale_after_seconds": 600, "auto_release": None},
        {"stale_after_seconds": 600},
        {"auto_release": True},
        {"stale_after_seconds": 600, "auto_release": True, "extra": 1},
        [600, True],
        None,
    ],
)
async def test_bad_policy_bodies_are_refused_with_reasons(svc: Any, body: Any) -> None:
    admin = svc.account("admin")
    r = await svc.client.put("/api/v1/handoffs/policy", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    r = await svc.client.get("/api/v1/handoffs/policy", headers=admin.headers)
    assert r.json() == {"stale_after_seconds": None, "auto_release": False}
