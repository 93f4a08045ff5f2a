"""Bodies an adversary would send the sessions service directly: each is a 422 that stores nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from rf_contracts.api.sessions import MAX_CONTEXT_DEPTH
from rf_contracts.api.trees import MAX_TREE_TEXT_BYTES
from rfkit.jsonbody import MAX_DEPTH

pytestmark = pytest.mark.asyncio(loop_scope="session")

SESSIONS = "/api/v1/sessions"
TREES = "/api/v1/trees"


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _session_bodies(tree_id: str) -> list[bytes]:
    """Raw bodies (json.dumps would refuse most of them) for POST /sessions."""
    head = b'{"tree_id": "%s", ' % tree_id.encode()
    return [
        head + b'"context": {"n": NaN}}',
        head + b'"context": {"n": Infinity}}',
        head + b'"context": {"n": -Infinity}}',
        head + b'"context": {"n": 1e999}}',
        head + b'"context": {"n": 1%s}}' % (b"0" * 5000),
        head + b'"title": "\\ud800"}',
        head + b'"title": "\\udfff x"}',
        head + b'"title": "a\\u0000b"}',
        head + b'"context": {"a\\u0000": 1}}',
        head + b'"context": {"\\ud83d": 1}}',
        head + b'"context": ["\\ud800"]}',
        head + b'"context": "\\u0000"}',
        head + b'"context": ' + json.dumps(_nested(MAX_CONTEXT_DEPTH + 1)).encode() + b"}",
        head + b'"context": ' + json.dumps(_nested(MAX_DEPTH)).encode() + b"}",
        head + b'"context": ' + json.dumps(_nested(300)).encode() + b"}",
        head + b'"context": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
        head + b'"context": "' + b"x" * 20_000 + b'"}',
    ]


async def test_a_hostile_session_body_is_a_422_without_its_input_and_nothing_is_stored(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    for body in _session_bodies(tree["id"]):
        r = await env.client.post(SESSIONS, content=body,
                                  headers={**eng.headers, "content-type": "application/json"})
        assert r.status_code == 422, (body[:120], r.status_code, r.text[:300])
        errors = r.json()["errors"]
        assert errors and all({"loc", "msg", "type"} <= set(error) and "input" not in error for error in errors)
        assert r.json()["errors"][0]["loc"][0] == "body" and r.json()["code"] == "validation_failed"
    listed = await env.client.get(SESSIONS, headers=eng.headers)
    assert listed.status_code == 200 and listed.json()["total"] == 0


async def test_a_context_at_the_limits_is_stored_and_read_back(env) -> None:
    eng = env.caller()
    context = {"deep": _nested(MAX_CONTEXT_DEPTH - 1), "emoji": "\U0001f5a8 \ud83d\udda8".encode(
        "utf-16", "surrogatepass").decode("utf-16"), "big": 10**300, "small": -1.5e-300}
    session = await env.start_session(eng, context=context)
    assert session["context"] == context
    got = await env.client.get(f"{SESSIONS}/{session['id']}", headers=eng.headers)
    assert got.status_code == 200 and got.json()["context"] == context


async def test_a_stored_context_too_deep_to_answer_is_answered_as_its_json_text(env) -> None:
    # Written before the limits existed: the session, the lists holding it and its export must stay readable.
    eng = env.caller()
    session = await env.start_session(eng)
    deep = _nested(300)
    async with env.running.app.state.runtime.db.unit_of_work() as uow:
        await uow.session.execute(sa.text("UPDATE sessions SET context = CAST(:c AS jsonb) WHERE id = :id"),
                        {"c": json.dumps(deep), "id": session["id"]})
    for path in (f"{SESSIONS}/{session['id']}", SESSIONS, f"{SESSIONS}?scope=account"):
        r = await env.client.get(path, headers=eng.headers)
        assert r.status_code == 200, (path, r.text[:300])
    got = (await env.client.get(f"{SESSIONS}/{session['id']}", headers=eng.headers)).json()
    assert json.loads(got["context"]) == deep
    for fmt in ("json", "markdown"):
        r = await env.client.post(f"{SESSIONS}/{session['id']}/export?format={fmt}", headers=eng.headers)
        assert r.status_code == 200, (fmt, r.text[:300])


def _tree_with_text(total_bytes: int) -> dict[str, Any]:
    """A valid chain of nodes whose text is `total_bytes` of distinct short words (the costliest to index)."""
    words = (f"{a}{b}{c}" for a in "bcdfghjklmnpqrstvwxz" for b in "aeiou" for c in "bcdfghjklmnpqrstvwxz0123456789")
    text = " ".join(w for _, w in zip(range(total_bytes), words, strict=False))
    while len(text) < total_bytes:
        text += " " + text
    text = text[:total_bytes]
    size = len("Big") + len("go") * 99
    chunks = [text[i:i + 4000] for i in range(0, total_bytes - size, 4000)]
    assert len(chunks) <= 100
    nodes = [{"id": f"n{i}", "kind": "action", "text": chunk.strip() or "x",
              "options": [{"label": "go", "next_node_id": f"n{i + 1}"}]} for i, chunk in enumerate(chunks)]
    nodes.append({"id": f"n{len(chunks)}", "kind": "solution", "text": "done"})
    return {"title": "Big", "root_node_id": "n0", "nodes": nodes}


async def test_a_tree_too_large_to_index_is_a_422_with_the_reason_and_one_at_the_limit_is_searchable(env) -> None:
    eng = env.caller()
    r = await env.client.post(TREES, json=_tree_with_text(MAX_TREE_TEXT_BYTES + 10_000), headers=eng.headers)
    assert r.status_code == 422, r.text[:300]
    assert "indexed for search" in r.json()["errors"][0]["msg"] and "input" not in r.json()["errors"][0]
    body = _tree_with_text(MAX_TREE_TEXT_BYTES - 4_000)
    r = await env.client.post(TREES, json=body, headers=eng.headers)
    assert r.status_code == 201, r.text[:300]
    found = await env.client.get(f"{TREES}/search", params={"q": "bab"}, headers=eng.headers)
    assert found.status_code == 200 and [hit["id"] for hit in found.json()["items"]] == [r.json()["id"]]
    listed = await env.client.get(TREES, headers=eng.headers)
    assert listed.status_code == 200 and listed.json()["total"] == 1


async def test_text_no_column_can_hold_is_a_422_in_every_text_field(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    sid = session["id"]
    for bad in ("a\x00b", "a\ud800b"):
        cases = [
            ("PUT", f"{SESSIONS}/{sid}", {"notes": bad}),
            ("PUT", f"{SESSIONS}/{sid}", {"title": bad}),
            ("POST", f"{SESSIONS}/{sid}/steps", {"kind": "note", "content": bad}),
            ("POST", f"{SESSIONS}/{sid}/complete", {"outcome": "resolved", "summary": bad}),
            ("POST", TREES, env.tree_body(description=bad)),
            ("POST", TREES, env.tree_body(tags=[bad])),
        ]
        for method, path, body in cases:
            # ensure_ascii keeps a lone surrogate as its escape, the way a hostile client would send it
            content = json.dumps(body, ensure_ascii=True).encode()
            r = await env.client.request(method, path, content=content,
                                         headers={**eng.headers, "content-type": "application/json"})
            assert r.status_code == 422, (method, path, repr(bad), r.text[:200])
    r = await env.client.get(f"{TREES}/search", params={"q": "a\x00b"}, headers=eng.headers)
    assert r.status_code == 422
    steps = await env.client.get(f"{SESSIONS}/{sid}/steps", headers=eng.headers)
    assert steps.status_code == 200 and steps.json()["total"] == 0
    got = await env.client.get(f"{SESSIONS}/{sid}", headers=eng.headers)
    assert got.status_code == 200 and got.json()["status"] == "active" and got.json()["notes"] == ""
