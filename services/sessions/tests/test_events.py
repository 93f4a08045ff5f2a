"""Events on real Kafka: what the service publishes (once, keyed, per the JSON Schemas) and handoff events it folds."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from rf_contracts import HandoffClaimed, HandoffEvent, HandoffReleased, HandoffRequested, HandoffResolved, topics
from rf_testsupport import produce, read_topic, wait_until
from rfkit.consumer import DLQ_REASON_HEADER
from rfkit.tables import processed_events

pytestmark = pytest.mark.asyncio(loop_scope="session")

SESSIONS = "/api/v1/sessions"


def _body(record: Any) -> dict[str, Any]:
    return json.loads(record.value)


def _common(body: dict[str, Any], event_type: str, account_id: Any) -> None:
    assert body["event_type"] == event_type and body["schema_version"] == 1
    assert body["account_id"] == str(account_id)
    uuid.UUID(body["event_id"])
    assert datetime.fromisoformat(body["occurred_at"]).utcoffset() == timedelta(0)


async def test_each_change_publishes_its_event_once_with_the_contract_fields(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    sid = session["id"]
    await env.client.put(f"{SESSIONS}/{sid}", json={"title": "renamed"}, headers=eng.headers)  # no event
    r = await env.client.put(f"{SESSIONS}/{sid}", json={"answer": {"node_id": "start", "option_label": "Yes"}},
                             headers=eng.headers)
    assert r.status_code == 200
    made = [
        (await env.client.post(f"{SESSIONS}/{sid}/steps", json={"kind": k, "content": "x", "actor_type": a},
                               headers=eng.headers)).json()
        for k, a in (("note", "human"), ("suggestion", "ai"))
    ]
    done = await env.client.post(f"{SESSIONS}/{sid}/complete", json={"outcome": "unresolved"}, headers=eng.headers)
    assert done.status_code == 200
    await env.client.post(f"{SESSIONS}/{sid}/complete", json={"outcome": "resolved"}, headers=eng.headers)  # 409
    steps = (await env.client.get(f"{SESSIONS}/{sid}/steps", headers=eng.headers)).json()["items"]

    started, created, completed = await asyncio.gather(
        env.events(topics.SESSION_STARTED, session_id=sid),
        env.events(topics.STEP_CREATED, session_id=sid),
        env.events(topics.SESSION_COMPLETED, session_id=sid),
    )
    assert len(started) == 1
    body = _body(started[0])
    _common(body, "session.started", eng.account_id)
    assert started[0].key == sid.encode() and body["session_id"] == sid
    assert (body["tree_id"], body["tree_version"]) == (session["tree_id"], 1)
    assert body["started_by"] == str(eng.user_id)
    assert (body["tree_title"], body["tree_category"]) == ("Printer does not print", "hardware")
    assert datetime.fromisoformat(body["started_at"]) == datetime.fromisoformat(session["started_at"])

    assert len(created) == 3
    bodies = [_body(r) for r in created]
    for b in bodies:
        _common(b, "session.step_created", eng.account_id)
        assert b["session_id"] == sid
    assert {b["step_id"] for b in bodies} == {s["id"] for s in steps}
    by_step = {b["step_id"]: b for b in bodies}
    for step in steps:
        b = by_step[step["id"]]
        assert (b["kind"], b["actor_type"]) == (step["kind"], step["actor_type"])
        assert datetime.fromisoformat(b["created_at"]) == datetime.fromisoformat(step["created_at"])
    assert by_step[steps[0]["id"]]["kind"] == "answer"
    assert by_step[made[0]["id"]]["actor_id"] == str(eng.user_id)
    assert by_step[made[1]["id"]]["actor_id"] is None  # the assistant is not a person

    assert len(completed) == 1
    body = _body(completed[0])
    _common(body, "session.completed", eng.account_id)
    assert (body["session_id"], body["outcome"]) == (sid, "unresolved")
    assert datetime.fromisoformat(body["completed_at"]) == datetime.fromisoformat(done.json()["completed_at"])
    assert completed[0].key == sid.encode()


async def test_session_started_names_the_title_and_category_of_the_version_it_started_on(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng, title="Wi-Fi drops", category="network")
    first = await env.start_session(eng, tree["id"], title="Ticket 7")  # the session's own title is not the tree's
    replaced = await env.client.put(f"/api/v1/trees/{tree['id']}",
                                    json=env.tree_body(title="Wi-Fi drops (v2)", category="wireless"),
                                    headers=eng.headers)
    assert replaced.status_code == 200, replaced.text
    second = await env.start_session(eng, tree["id"])
    old, new = await asyncio.gather(
        env.events(topics.SESSION_STARTED, session_id=first["id"]),
        env.events(topics.SESSION_STARTED, session_id=second["id"]),
    )
    assert [(_body(r)["tree_version"], _body(r)["tree_title"], _body(r)["tree_category"]) for r in old + new] == [
        (1, "Wi-Fi drops", "network"),
        (2, "Wi-Fi drops (v2)", "wireless"),
    ]


async def test_rejected_changes_publish_nothing(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    sid = session["id"]
    bad = await env.client.put(f"{SESSIONS}/{sid}", json={"answer": {"node_id": "start", "option_label": "??"}},
                               headers=eng.headers)
    assert bad.status_code == 422
    viewer = env.colleague(eng, "viewer")
    forbidden = await env.client.post(f"{SESSIONS}/{sid}/steps", json={"kind": "note", "content": "x"},
                                      headers=viewer.headers)
    assert forbidden.status_code == 403
    # A valid step afterwards: the relay publishes in commit order, so had the rejected calls written an
    # event it would be on the topic before this one.
    ok = await env.client.post(f"{SESSIONS}/{sid}/steps", json={"kind": "note", "content": "ok"}, headers=eng.headers)
    assert ok.status_code == 201
    created = await env.events(topics.STEP_CREATED, session_id=sid)
    assert [json.loads(r.value)["step_id"] for r in created] == [ok.json()["id"]]


# --- consuming handoff events ------------------------------------------------------------------------------


class Handoff:
    """Builds the events of one handoff of a session, version by version."""

    def __init__(self, account_id: Any, session_id: str) -> None:
        self.account_id = account_id
        self.session_id = uuid.UUID(session_id)
        self.handoff_id = uuid.uuid4()
        self.t0 = datetime.now(UTC)

    def _common(self, version: int) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4(),
            "occurred_at": self.t0 + timedelta(seconds=version),
            "account_id": self.account_id,
            "session_id": self.session_id,
            "handoff_id": self.handoff_id,
            "version": version,
        }

    def requested(self, version: int, by: uuid.UUID) -> HandoffRequested:
        return HandoffRequested(**self._common(version), requested_by=by, requested_at=self.t0, priority="high",
                                reason="stuck")

    def claimed(self, version: int, by: uuid.UUID) -> HandoffClaimed:
        return HandoffClaimed(**self._common(version), claimed_by=by, claimed_at=self.t0 + timedelta(seconds=version))

    def released(self, version: int, by: uuid.UUID) -> HandoffReleased:
        return HandoffReleased(**self._common(version), released_by=by, released_at=self.t0)

    def resolved(self, version: int, by: uuid.UUID) -> HandoffResolved:
        return HandoffResolved(**self._common(version), resolved_by=by, resolved_at=self.t0)


async def already_consumed(db: Any, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await db.execute(
        sa.select(processed_events.c.event_id).where(
            processed_events.c.consumer == "sessions-escalations", processed_events.c.event_id.in_(event_ids)
        )
    )
    return set(rows.scalars())


async def _send(env, *events: HandoffEvent) -> None:
    for event in events:
        await produce(env.bootstrap, env.prefix + event.TOPIC, [(event.key(), event.to_json())])


async def _escalation_becomes(env, who, session_id: str, **expected: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def matches() -> bool:
        r = await env.client.get(f"{SESSIONS}/{session_id}", headers=who.headers)
        seen["escalation"] = r.json()["escalation"]
        esc = seen["escalation"] or {}
        return all(esc.get(k) == v for k, v in expected.items())

    try:
        await wait_until(matches, timeout_s=30)
    except AssertionError:
        raise AssertionError(f"escalation is {seen.get('escalation')}, expected {expected}") from None
    return seen["escalation"]


async def test_handoff_events_show_who_works_on_the_session(env) -> None:
    eng = env.caller()
    expert, other = uuid.uuid4(), uuid.uuid4()
    session = await env.start_session(eng)
    sid = session["id"]
    h = Handoff(eng.account_id, sid)
    await _send(env, h.requested(1, eng.user_id))
    esc = await _escalation_becomes(env, eng, sid, status="open", version=1)
    assert esc == {"handoff_id": str(h.handoff_id), "status": "open", "claimed_by": None, "claimed_at": None,
                   "version": 1, "updated_at": esc["updated_at"]}

    claim = h.claimed(2, expert)
    await _send(env, claim)
    esc = await _escalation_becomes(env, eng, sid, status="claimed", version=2)
    assert esc["claimed_by"] == str(expert)
    assert datetime.fromisoformat(esc["claimed_at"]) == claim.claimed_at

    await _send(env, h.released(3, expert))
    esc = await _escalation_becomes(env, eng, sid, status="released", version=3)
    assert (esc["claimed_by"], esc["claimed_at"]) == (None, None)

    # Claimed again by someone else, then resolved: the resolver's handoff keeps its claimer.
    await _send(env, h.claimed(4, other), h.resolved(5, other))
    esc = await _escalation_becomes(env, eng, sid, status="resolved", version=5)
    assert esc["claimed_by"] == str(other)
    # The view is on the list too and in the export.
    listed = (await env.client.get(SESSIONS, headers=eng.headers)).json()["items"]
    assert [s["escalation"]["status"] for s in listed if s["id"] == sid] == ["resolved"]
    md = (await env.client.post(f"{SESSIONS}/{sid}/export", headers=eng.headers)).text
    assert f"handoff `{h.handoff_id}` is resolved, claimed by `{other}`" in md


async def test_stale_handoff_event_after_a_newer_one_changes_nothing(env) -> None:
    eng = env.caller()
    expert = uuid.uuid4()
    session = await env.start_session(eng)
    sid = session["id"]
    h = Handoff(eng.account_id, sid)
    claim, release = h.claimed(2, expert), h.released(3, expert)
    # Newest first: release (v3) arrives before the claim (v2) and the request (v1) it follows.
    stale = [release, claim, h.requested(1, eng.user_id)]
    await _send(env, *stale)
    db = env.running.app.state.runtime.db

    async def all_consumed() -> bool:
        async with db.read() as s:
            ids = await already_consumed(s, [e.event_id for e in stale])
        return len(ids) == 3

    await wait_until(all_consumed, timeout_s=30)
    esc = (await env.client.get(f"{SESSIONS}/{sid}", headers=eng.headers)).json()["escalation"]
    assert (esc["handoff_id"], esc["status"], esc["version"]) == (str(h.handoff_id), "released", 3)
    assert (esc["claimed_by"], esc["claimed_at"]) == (None, None)
    marker = Handoff(eng.account_id, sid)  # a later handoff of the same session
    marker.t0 += timedelta(minutes=1)
    await _send(env, marker.requested(1, eng.user_id))
    await _escalation_becomes(env, eng, sid, handoff_id=str(marker.handoff_id), status="open")
    # A duplicate delivery of the newer event is applied once; the view does not move.
    await _send(env, release)
    await _send(env, marker.claimed(2, expert))
    esc = await _escalation_becomes(env, eng, sid, status="claimed", version=2)
    assert esc["handoff_id"] == str(marker.handoff_id) and esc["claimed_by"] == str(expert)


async def test_malformed_handoff_event_goes_to_the_dlq_and_consumption_goes_on(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    sid = session["id"]
    topic = env.prefix + topics.HANDOFF_CLAIMED
    broken = b'{"event_type": "handoff.claimed", "version": "two"}'
    await produce(env.bootstrap, topic, [(sid.encode(), broken), (sid.encode(), b"not json at all")])
    h = Handoff(eng.account_id, sid)
    await _send(env, h.claimed(2, eng.user_id))
    await _escalation_becomes(env, eng, sid, status="claimed", claimed_by=str(eng.user_id))
    dead = await read_topic(env.bootstrap, topics.dlq(topic), expect=2)
    mine = [r for r in dead if r.key == sid.encode()]
    assert [r.value for r in mine] == [broken, b"not json at all"]
    for record in mine:
        headers = dict(record.headers)
        assert headers[DLQ_REASON_HEADER]
        assert headers["x-original-topic"] == topic.encode()
