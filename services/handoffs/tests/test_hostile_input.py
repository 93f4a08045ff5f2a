"""Text the handoffs tables cannot hold (NUL, lone surrogates) is a 422 on every route, and nothing changes."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

HANDOFFS = "/api/v1/handoffs"
BAD = ["a\x00b", "a\ud800b", "\udc00"]


async def _post(service, caller, path: str, body: dict) -> int:
    # ensure_ascii sends a lone surrogate as its escape, as a hostile client would
    r = await service.client.post(path, content=json.dumps(body, ensure_ascii=True),
                                  headers={**caller.headers, "content-type": "application/json"})
    assert "input" not in r.text, r.text
    return r.status_code


async def test_a_reason_no_column_can_hold_is_a_422_and_nothing_is_queued(service) -> None:
    eng = service.account()
    session_id = str(service.sessions.add(eng.account_id))
    for bad in BAD:
        assert await _post(service, eng, HANDOFFS, {"session_id": session_id, "reason": bad}) == 422, repr(bad)
    listed = await service.client.get(HANDOFFS, headers=eng.headers)
    assert listed.status_code == 200 and listed.json()["total"] == 0


async def test_a_resolution_note_no_column_can_hold_is_a_422_and_the_handoff_stays_claimed(service) -> None:
    eng = service.account()
    handoff = await service.escalate(eng)
    claimed = await service.client.post(f"{HANDOFFS}/{handoff['id']}/claim", headers=eng.headers)
    assert claimed.status_code == 200, claimed.text
    for bad in BAD:
        status = await _post(service, eng, f"{HANDOFFS}/{handoff['id']}/resolve", {"resolution_note": bad})
        assert status == 422, repr(bad)
    got = await service.client.get(f"{HANDOFFS}/{handoff['id']}", headers=eng.headers)
    assert got.status_code == 200 and got.json()["status"] == "claimed"
