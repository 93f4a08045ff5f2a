"""Escalating a session, the sessions check behind it, and a completed session resolving its handoff."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from handoffs.clients import SessionsClient
from handoffs.consumers import SESSION_COMPLETED_CONSUMER
from handoffs.deps import get_sessions_client
from rf_contracts import SessionCompleted, topics
from rf_testsupport import produce, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def post(service, caller, body: dict, **headers: str):
    return await service.client.post("/api/v1/handoffs", json=body, headers={**caller.headers, **headers})


def completed_event(account_id: uuid.UUID, session_id: uuid.UUID, event_id: uuid.UUID | None = None) -> bytes:
    now = datetime.now(UTC)
    return SessionCompleted(
        event_id=event_id or uuid.uuid4(),
        occurred_at=now,
        account_id=account_id,
        session_id=session_id,
        completed_at=now,
        outcome="resolved",
    ).to_json()


async def complete(service, account_id: uuid.UUID, session_id: uuid.UUID, *, event_id=None) -> uuid.UUID:
    """Publish session.completed as the sessions service would (key = session id); returns its event id."""
    event_id = event_id or uuid.uuid4()
    await produce(
        service.bootstrap,
        service.prefix + topics.SESSION_COMPLETED,
        [(str(session_id).encode(), completed_event(account_id, session_id, event_id))],
    )
    return event_id


async def processed(service, *event_ids: uuid.UUID) -> None:
    """Wait until the service's consumer has committed these events."""

    async def done() -> bool:
        n = await service.scalar(
            "SELECT count(*) FROM processed_events WHERE consumer = :c AND event_id = ANY(:ids)",
            c=SESSION_COMPLETED_CONSUMER,
            ids=list(event_ids),
        )
        return n == len(set(event_ids))

    await wait_until(done)


async def test_escalating_a_session_queues_an_open_handoff_and_publishes_requested(service) -> None:
    me = service.account()
    session_id = service.sessions.add(me.account_id)

    r = await post(
        service,
        me,
        {"session_id": str(session_id), "reason": " customer stuck ", "priority": "high"},
        **{"X-Request-ID": "req-escalate-1"},
    )

    assert r.status_code == 201, r.text
    h = r.json()
    assert h["status"] == "open" and h["last_action"] == "requested" and h["version"] == 1
    assert h["session_id"] == str(session_id) and h["account_id"] == str(me.account_id)
    assert h["requested_by"] == str(me.user_id) and h["priority"] == "high" and h["reason"] == "customer stuck"
    assert h["claimed_by"] is None and h["claimed_at"] is None
    # The check went to the sessions service with the caller's own credentials and request id.
    call = next(c for c in service.sessions.calls if c["session_id"] == str(session_id))
    assert call["authorization"] == me.headers["Authorization"] and call["request_id"] == "req-escalate-1"

    [event] = await service.events(topics.HANDOFF_REQUESTED, handoff_id=h["id"])
    assert event["_key"] == str(session_id)
    assert event["event_type"] == "handoff.requested" and event["schema_version"] == 1
    assert event["version"] == 1 and event["account_id"] == str(me.account_id)
    assert event["requested_by"] == str(me.user_id) and event["priority"] == "high"
    assert event["reason"] == "customer stuck"
    assert datetime.fromisoformat(event["requested_at"]) == datetime.fromisoformat(h["requested_at"])

    detail = (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=me.headers)).json()
    assert [(e["action"], e["version"], e["actor_id"]) for e in detail["history"]] == [
        ("requested", 1, str(me.user_id))
    ]


async def test_priority_defaults_to_normal(service) -> None:
    me = service.account()
    session_id = service.sessions.add(me.account_id)
    r = await post(service, me, {"session_id": str(session_id), "reason": "help"})
    assert r.status_code == 201 and r.json()["priority"] == "normal"


async def test_escalating_twice_is_409_naming_the_live_handoff(service) -> None:
    me = service.account()
    first = await service.escalate(me)
    body = {"session_id": first["session_id"], "reason": "again", "priority": "urgent"}

    r = await post(service, me, body)
    assert r.status_code == 409
    assert r.json()["handoff_id"] == first["id"]

    # Still refused while it is claimed; allowed again once it is resolved.
    assert (await service.act(me, first["id"], "claim")).status_code == 200
    assert (await post(service, me, body)).status_code == 409
    assert (await service.act(me, first["id"], "resolve")).status_code == 200
    assert (await post(service, me, body)).status_code == 201


async def test_concurrent_escalations_of_one_session_create_exactly_one_handoff(service) -> None:
    me = service.account()
    session_id = service.sessions.add(me.account_id)
    body = {"session_id": str(session_id), "reason": "help", "priority": "normal"}

    answers = await asyncio.gather(*(post(service, me, body) for _ in range(8)))

    assert sorted(r.status_code for r in answers) == [201] + [409] * 7
    page = (await service.client.get("/api/v1/handoffs", headers=me.headers)).json()
    assert page["total"] == 1


async def test_escalating_a_completed_session_is_409(service) -> None:
    me = service.account()
    session_id = service.sessions.add(me.account_id, status="completed")
    r = await post(service, me, {"session_id": str(session_id), "reason": "too late"})
    assert r.status_code == 409
    assert "completed" in r.json()["detail"]


async def test_unknown_or_other_accounts_session_is_404(service) -> None:
    me = service.account()
    stranger = service.account()
    theirs = service.sessions.add(stranger.account_id)
    # Even if the sessions service wrongly answered for another account, the account is checked here too.
    leaked = service.sessions.add(stranger.account_id, ignore_tenancy=True)

    for session_id in (uuid.uuid4(), theirs, leaked):
        r = await post(service, me, {"session_id": str(session_id), "reason": "help"})
        assert r.status_code == 404, (session_id, r.text)


async def test_a_viewer_cannot_escalate(service) -> None:
    viewer = service.account(role="viewer")
    session_id = service.sessions.add(viewer.account_id)
    r = await post(service, viewer, {"session_id": str(session_id), "reason": "help"})
    assert r.status_code == 403


async def test_a_request_without_a_valid_token_is_401(service) -> None:
    r = await service.client.get("/api/v1/handoffs")
    assert r.status_code == 401
    r = await service.client.get("/api/v1/handoffs", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "help", "priority": "critical"},  # unknown priority
        {"priority": "high"},  # missing reason
        {"reason": "   ", "priority": "high"},  # blank reason
        {"reason": "x" * 2001},  # too long
        {"reason": "help", "colour": "red"},  # unknown field
        {"session_id": "not-a-uuid", "reason": "help"},
        {"session_id": None, "reason": "help"},
    ],
)
async def test_bad_escalation_input_is_422(service, body: dict) -> None:
    me = service.account()
    payload = {"session_id": str(service.sessions.add(me.account_id)), **body}
    r = await post(service, me, payload)
    assert r.status_code == 422, r.text


async def test_non_uuid_handoff_id_is_422_on_every_route(service) -> None:
    me = service.account()
    assert (await service.client.get("/api/v1/handoffs/nope", headers=me.headers)).status_code == 422
    for action in ("claim", "release", "resolve"):
        assert (await service.act(me, "nope", action)).status_code == 422


async def _escalate_asking(service, me, session_id: uuid.UUID, sessions: SessionsClient):
    """Escalate with `sessions` as the service's sessions client for this one request (closed afterwards)."""
    service.app.dependency_overrides[get_sessions_client] = lambda: sessions
    try:
        return await post(service, me, {"session_id": str(session_id), "reason": "help"})
    finally:
        service.app.dependency_overrides.pop(get_sessions_client)
        await sessions.aclose()


async def test_sessions_service_down_is_503_with_a_clear_detail(service) -> None:
    me = service.account()
    session_id = service.sessions.add(me.account_id)
    r = await _escalate_asking(service, me, session_id, SessionsClient(service.closed_port_url(), timeout_s=2.0))
    assert r.status_code == 503
    assert "sessions service is unreachable" in r.json()["detail"]
    # Nothing was recorded: the same escalation succeeds once sessions answers again.
    assert (await post(service, me, {"session_id": str(session_id), "reason": "help"})).status_code == 201


async def test_sessions_service_too_slow_is_503(service) -> None:
    me = service.account()
    session_id = service.sessions.add(me.account_id, hang=True)
    r = await _escalate_asking(service, me, session_id, SessionsClient(service.sessions.url, timeout_s=0.2))
    assert r.status_code == 503
    assert "did not answer" in r.json()["detail"]


async def test_completing_a_session_resolves_its_claimed_handoff_once(service) -> None:
    me = service.account()
    h = await service.escalate(me)
    claimed = (await service.act(me, h["id"], "claim")).json()
    session_id = uuid.UUID(h["session_id"])
    event_id = uuid.uuid4()

    await complete(service, me.account_id, session_id, event_id=event_id)

    async def resolved() -> bool:
        r = await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=me.headers)
        return r.json()["status"] == "resolved"

    await wait_until(resolved)
    # Redelivery of the same event, then a second completion event (same key, so consumed after it).
    await complete(service, me.account_id, session_id, event_id=event_id)
    await processed(service, await complete(service, me.account_id, session_id))
    resolutions = await service.scalar(
        "SELECT count(*) FROM handoff_history WHERE handoff_id = :h AND action = 'resolved'", h=uuid.UUID(h["id"])
    )
    assert resolutions == 1

    detail = (await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=me.headers)).json()
    assert detail["version"] == 3 and detail["last_action"] == "resolved"
    assert detail["resolved_by"] == str(me.user_id)  # the holder of the claim
    assert detail["claimed_by"] == str(me.user_id) and detail["claimed_at"] == claimed["claimed_at"]
    last = detail["history"][-1]
    assert (last["action"], last["version"], last["actor_type"]) == ("resolved", 3, "system")
    assert last["note"] == "session completed (resolved)"

    [event] = await service.events(topics.HANDOFF_RESOLVED, handoff_id=h["id"])
    assert event["version"] == 3 and event["resolved_by"] == str(me.user_id)
    assert event["_key"] == str(session_id) and event["session_id"] == str(session_id)


async def test_completing_a_session_resolves_its_open_handoff_in_the_requesters_name(service) -> None:
    me = service.account()
    h = await service.escalate(me)
    await complete(service, me.account_id, uuid.UUID(h["session_id"]))

    async def resolved() -> bool:
        r = await service.client.get(f"/api/v1/handoffs/{h['id']}", headers=me.headers)
        return r.json()["status"] == "resolved"

    await wait_until(resolved)
    [event] = await service.events(topics.HANDOFF_RESOLVED, handoff_id=h["id"])
    assert event["version"] == 2 and event["resolved_by"] == str(me.user_id)


async def test_a_completion_known_from_events_refuses_escalation_even_if_the_sync_check_says_active(
    service,
) -> None:
    me = service.account()
    # The completion arrives before any escalation (the stand-in still says "active": the race).
    session_id = service.sessions.add(me.account_id)
    await processed(service, await complete(service, me.account_id, session_id))

    r = await post(service, me, {"session_id": str(session_id), "reason": "help"})
    assert r.status_code == 409
    assert "completed" in r.json()["detail"]
