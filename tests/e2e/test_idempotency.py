"""Idempotency-Key through the gateway: a repeated POST does the work once and answers as the first time did."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from rf_testsupport import Served
from sessions.main import create_app as sessions_app
from sessions.settings import Settings as SessionsSettings

STEP = {"kind": "note", "content": "checked the cable", "actor_type": "human"}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def _journal(api: Any, user: Any, session_id: str) -> list[dict[str, Any]]:
    page = await api.ok("GET", f"/sessions/{session_id}/steps?limit=200", user)
    return page["items"]  # type: ignore[no-any-return]


async def _engineer_session(api: Any) -> tuple[Any, str]:
    team = await api.account("engineer")
    eng = team.users["engineer"]
    return eng, (await api.session(eng))["id"]


async def test_a_repeated_step_is_recorded_once_and_answered_alike(api: Any) -> None:
    eng, session_id = await _engineer_session(api)
    key = _key()
    first = await api.call("POST", f"/sessions/{session_id}/steps", eng, json=STEP, headers=key)
    again = await api.call("POST", f"/sessions/{session_id}/steps", eng, json=STEP, headers=key)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == first.headers["content-type"]
    steps = [s for s in await _journal(api, eng, session_id) if s["content"] == STEP["content"]]
    assert [s["id"] for s in steps] == [first.json()["id"]]


async def test_twenty_concurrent_repeats_record_one_step(api: Any) -> None:
    eng, session_id = await _engineer_session(api)
    key = _key()
    answers = await asyncio.gather(*(
        api.call("POST", f"/sessions/{session_id}/steps", eng, json=STEP, headers=key) for _ in range(20)
    ))
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers if r.status_code != 201]
    assert len({r.content for r in answers}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in answers) == 1
    steps = [s for s in await _journal(api, eng, session_id) if s["content"] == STEP["content"]]
    assert len(steps) == 1 and steps[0]["id"] == answers[0].json()["id"]


async def test_a_repeat_reaching_another_replica_gets_the_same_answer(api: Any, stack: Any) -> None:
    eng, session_id = await _engineer_session(api)
    # A second instance of the sessions service on the same database, as a second pod would be.
    settings = SessionsSettings(**{**stack.service_settings["sessions"], "consume": False, "create_topics": False})
    async with Served(sessions_app(settings)) as replica, httpx.AsyncClient(base_url=replica.url) as direct:
        key = _key()
        path = f"/sessions/{session_id}/steps"
        first = await api.call("POST", path, eng, json=STEP, headers=key)
        assert first.status_code == 201, first.text
        again = await direct.post(f"/api/v1{path}", json=STEP, headers={**eng.headers, **key})
        assert (again.status_code, again.json()) == (201, first.json())

        # At the same moment: the gateway's replica and the other one, ten each.
        key = _key()
        answers = await asyncio.gather(*(
            api.call("POST", path, eng, json=STEP, headers=key) if n % 2
            else direct.post(f"/api/v1{path}", json=STEP, headers={**eng.headers, **key})
            for n in range(20)
        ))
        assert {r.status_code for r in answers} == {201} and len({r.content for r in answers}) == 1
    steps = [s for s in await _journal(api, eng, session_id) if s["content"] == STEP["content"]]
    assert len(steps) == 2


async def test_the_same_key_with_another_body_is_422(api: Any) -> None:
    eng, session_id = await _engineer_session(api)
    key = _key()
    path = f"/sessions/{session_id}/steps"
    assert (await api.call("POST", path, eng, json=STEP, headers=key)).status_code == 201
    r = await api.call("POST", path, eng, json={**STEP, "content": "something else"}, headers=key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused", r.text
    assert [s["content"] for s in await _journal(api, eng, session_id)].count("something else") == 0


async def test_without_a_key_every_post_does_the_work(api: Any) -> None:
    eng, session_id = await _engineer_session(api)
    path = f"/sessions/{session_id}/steps"
    ids = [(await api.ok("POST", path, eng, 201, json=STEP))["id"] for _ in range(2)]
    assert len(set(ids)) == 2
    assert [s["id"] for s in await _journal(api, eng, session_id) if s["content"] == STEP["content"]] == ids


async def test_a_key_belongs_to_its_user_and_its_path(api: Any) -> None:
    team = await api.account("engineer", "engineer2")
    one, two = team.users["engineer"], team.users["engineer2"]
    session_id = (await api.session(one))["id"]
    key = _key()
    path = f"/sessions/{session_id}/steps"
    a = await api.ok("POST", path, one, 201, json=STEP, headers=key)
    b = await api.ok("POST", path, two, 201, json=STEP, headers=key)
    assert a["id"] != b["id"]
    other = await api.call("POST", f"/sessions/{session_id}/complete", one, json={"outcome": "resolved"}, headers=key)
    assert other.status_code == 200, other.text


async def test_a_malformed_key_is_422_with_a_code(api: Any) -> None:
    eng, session_id = await _engineer_session(api)
    for bad in ("", "x" * 256, "has space", "émoji"):
        r = await api.call("POST", f"/sessions/{session_id}/steps", eng, json=STEP,
                           headers={"Idempotency-Key": bad.encode()})
        assert r.status_code == 422 and r.json()["code"] == "idempotency_key_invalid", (bad, r.text)
    assert await _journal(api, eng, session_id) == []


async def test_handoffs_and_the_gateways_own_posts_honour_the_key(api: Any) -> None:
    eng, session_id = await _engineer_session(api)
    key = _key()
    body = {"session_id": session_id, "reason": "needs an expert", "priority": "high"}
    first = await api.call("POST", "/handoffs", eng, json=body, headers=key)
    again = await api.call("POST", "/handoffs", eng, json=body, headers=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()

    email = f"idem-{uuid.uuid4().hex[:10]}@example.com"
    register = {"email": email, "password": "correct horse battery", "full_name": "Idem", "account_name": email}
    key = _key()
    made = [await api.call("POST", "/auth/register", json=register, headers=key) for _ in range(2)]
    assert [r.status_code for r in made] == [201, 201] and made[0].json() == made[1].json()
    without = await api.call("POST", "/auth/register", json=register)
    assert without.status_code == 409, without.text  # the work was done once: the email is taken
