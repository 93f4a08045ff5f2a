"""Claim, release and resolve: the race, the versions on the events, who may do what, and tenancy."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from rf_contracts import topics

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_twenty_concurrent_claims_have_exactly_one_winner_and_one_event(service) -> None:
    requester = service.account()
    h = await service.escalate(requester)
    engineers = [service.colleague(requester) for _ in range(20)]

    answers = await asyncio.gather(*(service.act(e, h["id"], "claim") for e in engineers))

    codes = [r.status_code for r in answers]
    assert codes.count(200) == 1 and codes.count(409) == 19, codes
    winner = engineers[codes.index(200)]
    won = answers[codes.index(200)].json()
    assert won["claimed_by"] == str(winner.user_id) and won["status"] == "claimed" and won["version"] == 2
    for r in answers:
        if r.status_code == 409:
            assert r.json()["claimed_by"] == str(winner.user_id) and isinstance(r.json()["detail"], str)

    claimed = await service.events(topics.HANDOFF_CLAIMED, handoff_id=h["id"])
    assert len(claimed) == 1
    assert claimed[0]["claimed_by"] == str(winner.user_id) and claimed[0]["version"] == 2
    detail = (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=requester.headers)).json()
    assert [e["action"] for e in detail["history"]] == ["requested", "claimed"]


async def test_release_and_reclaim_give_versions_one_to_four_on_the_events(service) -> None:
    alice = service.account()
    bob = service.colleague(alice)
    h = await service.escalate(alice)

    first = await service.act(alice, h["id"], "claim")
    again = await service.act(alice, h["id"], "claim")  # the holder again: a no-op
    released = await service.act(alice, h["id"], "release")
    second = await service.act(bob, h["id"], "claim")

    assert [r.status_code for r in (first, again, released, second)] == [200, 200, 200, 200]
    assert [r.json()["version"] for r in (first, again, released, second)] == [2, 2, 3, 4]
    assert again.json() == first.json()
    assert released.json()["status"] == "open" and released.json()["last_action"] == "released"
    assert released.json()["claimed_by"] is None and released.json()["claimed_at"] is None
    assert second.json()["claimed_by"] == str(bob.user_id)

    events = []
    for topic in (topics.HANDOFF_REQUESTED, topics.HANDOFF_CLAIMED, topics.HANDOFF_RELEASED):
        events += await service.events(topic, handoff_id=h["id"])
    events.sort(key=lambda e: e["version"])
    assert [(e["event_type"], e["version"]) for e in events] == [
        ("handoff.requested", 1),
        ("handoff.claimed", 2),
        ("handoff.released", 3),
        ("handoff.claimed", 4),
    ]
    assert events[1]["claimed_by"] == str(alice.user_id)
    assert datetime.fromisoformat(events[1]["claimed_at"]) == datetime.fromisoformat(first.json()["claimed_at"])
    assert events[2]["released_by"] == str(alice.user_id)
    assert events[3]["claimed_by"] == str(bob.user_id)
    assert all(e["_key"] == h["session_id"] and e["account_id"] == str(alice.account_id) for e in events)

    detail = (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=alice.headers)).json()
    assert [(e["action"], e["version"], e["actor_id"]) for e in detail["history"]] == [
        ("requested", 1, str(alice.user_id)),
        ("claimed", 2, str(alice.user_id)),
        ("released", 3, str(alice.user_id)),
        ("claimed", 4, str(bob.user_id)),
    ]


async def test_resolve_by_the_holder_keeps_the_claim_and_publishes_resolved(service) -> None:
    me = service.account()
    h = await service.escalate(me)
    claimed = (await service.act(me, h["id"], "claim")).json()

    r = await service.act(me, h["id"], "resolve", resolution_note="restarted the router")

    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "resolved" and body["version"] == 3 and body["resolved_by"] == str(me.user_id)
    assert body["resolution_note"] == "restarted the router"
    assert body["claimed_by"] == str(me.user_id) and body["claimed_at"] == claimed["claimed_at"]
    [event] = await service.events(topics.HANDOFF_RESOLVED, handoff_id=h["id"])
    assert event["version"] == 3 and event["resolved_by"] == str(me.user_id)
    assert datetime.fromisoformat(event["resolved_at"]) == datetime.fromisoformat(body["resolved_at"])


async def test_resolve_without_a_body_is_accepted(service) -> None:
    me = service.account()
    h = await service.escalate(me)
    await service.act(me, h["id"], "claim")
    r = await service.client.post(f"/api/v1/handoffs/{h['id']}/resolve", headers=me.headers)
    assert r.status_code == 200 and r.json()["resolution_note"] is None


async def test_a_viewer_cannot_claim_release_or_resolve_but_can_read(service) -> None:
    engineer = service.account()
    viewer = service.colleague(engineer, role="viewer")
    h = await service.escalate(engineer)

    assert (await service.act(viewer, h["id"], "claim")).status_code == 403
    await service.act(engineer, h["id"], "claim")
    assert (await service.act(viewer, h["id"], "release")).status_code == 403
    assert (await service.act(viewer, h["id"], "resolve")).status_code == 403

    for path in (f"/api/v1/handoffs/{h['id']}", "/api/v1/handoffs", "/api/v1/handoffs/stats"):
        assert (await service.client.get(path, headers=viewer.headers)).status_code == 200
    detail = (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=viewer.headers)).json()
    assert detail["version"] == 2  # the refused attempts changed nothing


async def test_another_engineer_cannot_release_or_resolve_a_claim_that_is_not_theirs(service) -> None:
    holder = service.account()
    other = service.colleague(holder)
    h = await service.escalate(holder)
    await service.act(holder, h["id"], "claim")

    for action in ("release", "resolve"):
        r = await service.act(other, h["id"], action)
        assert r.status_code == 403, action
        assert r.json()["claimed_by"] == str(holder.user_id)
    r = await service.act(other, h["id"], "claim")
    assert r.status_code == 409 and r.json()["claimed_by"] == str(holder.user_id)


async def test_an_admin_can_release_and_resolve_someone_elses_claim(service) -> None:
    holder = service.account()
    admin = service.colleague(holder, role="admin")
    h = await service.escalate(holder)
    await service.act(holder, h["id"], "claim")

    released = await service.act(admin, h["id"], "release")
    assert released.status_code == 200 and released.json()["status"] == "open"
    await service.act(holder, h["id"], "claim")
    resolved = await service.act(admin, h["id"], "resolve", resolution_note="closing as duplicate")
    assert resolved.status_code == 200
    assert resolved.json()["resolved_by"] == str(admin.user_id) and resolved.json()["version"] == 5
    [event] = await service.events(topics.HANDOFF_RELEASED, handoff_id=h["id"])
    assert event["released_by"] == str(admin.user_id)


async def test_an_admin_may_resolve_an_open_handoff_an_engineer_must_claim_first(service) -> None:
    engineer = service.account()
    admin = service.colleague(engineer, role="admin")
    h = await service.escalate(engineer)

    assert (await service.act(engineer, h["id"], "resolve")).status_code == 409
    r = await service.act(admin, h["id"], "resolve")
    assert r.status_code == 200 and r.json()["claimed_by"] is None and r.json()["version"] == 2


async def test_state_conflicts_are_409(service) -> None:
    me = service.account()
    admin = service.colleague(me, role="admin")
    h = await service.escalate(me)

    assert (await service.act(me, h["id"], "release")).status_code == 409  # not claimed
    await service.act(me, h["id"], "claim")
    await service.act(me, h["id"], "resolve")
    for caller, action in ((me, "claim"), (me, "release"), (me, "resolve"), (admin, "resolve")):
        r = await service.act(caller, h["id"], action)
        assert r.status_code == 409, (caller.role, action)
    detail = (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=me.headers)).json()
    assert detail["version"] == 3


async def test_another_accounts_handoff_is_404_on_every_route(service) -> None:
    owner = service.account()
    h = await service.escalate(owner)
    await service.act(owner, h["id"], "claim")

    for role in ("engineer", "admin", "viewer"):
        stranger = service.account(role=role)
        assert (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=stranger.headers)).status_code == 404
        if role != "viewer":
            for action in ("claim", "release", "resolve"):
                assert (await service.act(stranger, h["id"], action)).status_code == 404, (role, action)
        page = (await service.client.get("/api/v1/handoffs", headers=stranger.headers)).json()
        assert page["total"] == 0 and page["items"] == []
        stats = (await service.client.get("/api/v1/handoffs/stats", headers=stranger.headers)).json()
        assert stats["open"] == 0 and stats["claimed"] == 0
        # Escalating the owner's session is as unknown as a session that does not exist.
        r = await service.client.post(
            "/api/v1/handoffs", json={"session_id": h["session_id"], "reason": "x"}, headers=stranger.headers
        )
        assert r.status_code == (403 if role == "viewer" else 404)

    detail = (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=owner.headers)).json()
    assert detail["version"] == 2 and detail["claimed_by"] == str(owner.user_id)


async def test_an_unknown_handoff_is_404(service) -> None:
    me = service.account()
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await service.client.get(f"/api/v1/handoffs/{missing}", headers=me.headers)).status_code == 404
    for action in ("claim", "release", "resolve"):
        assert (await service.act(me, missing, action)).status_code == 404
