"""Through the gateway, every kind of error answer is `{"detail": sentence, "code"}` with a registered code.

(The e2e `stack` fixture also checks every error answer of the whole e2e run at its teardown.)
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from rf_contracts.api.errors import ErrorCode

CODES = {code.value for code in ErrorCode}


def _coded(r: httpx.Response, status: int, *codes: str) -> dict[str, Any]:
    assert r.status_code == status, (status, r.status_code, r.text)
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["code"] in CODES, body
    if codes:
        assert body["code"] in codes, body
    return body  # type: ignore[no-any-return]


async def test_each_kind_of_error_answer_has_a_sentence_and_a_registered_code(api: Any, stack: Any) -> None:
    team = await api.account("viewer", "engineer", "engineer2")
    viewer, eng, eng2 = team.users["viewer"], team.users["engineer"], team.users["engineer2"]
    client = api.client

    _coded(await client.get("/api/v1/trees"), 401, "not_authenticated")
    _coded(await client.get("/api/v1/trees", headers={"Authorization": "Bearer not.a.token"}), 401, "invalid_token")
    _coded(await api.call("POST", "/trees", viewer, json=api.tree_body()), 403, "forbidden")
    _coded(await api.call("GET", f"/trees/{uuid.uuid4()}", eng), 404)
    _coded(await api.call("GET", "/no-such-route", eng), 404, "not_found")
    _coded(await api.call("PUT", "/trees/categories", eng, json={}), 405, "method_not_allowed")
    # The stack records every error answer for the check at its teardown; this one among them.
    assert ("gateway", "PUT", "/api/v1/trees/categories", 405) in [seen[:4] for seen in stack.error_answers.seen]

    shape = _coded(await api.call("POST", "/trees", eng, json={"title": 5}), 422, "validation_failed")
    assert shape["errors"] and all({"loc", "msg", "type"} <= set(e) for e in shape["errors"])
    assert shape["detail"].startswith("invalid request: body.")
    broken = _coded(await api.call("POST", "/trees", eng, content=b'{"title": ', headers={
        "Content-Type": "application/json"}), 422, "validation_failed")
    assert broken["errors"][0]["loc"][0] == "body"
    graph = {**api.tree_body(), "root_node_id": "missing"}
    invalid = _coded(await api.call("POST", "/trees", eng, json=graph), 422)
    assert any(e.get("rule") for e in invalid["errors"]), invalid
    _coded(await api.call("GET", "/analytics/flowpilot/escalations?period=1d", eng), 422, "validation_failed")
    _coded(await api.call("POST", "/trees", eng, content=b"[" + b" " * (9 * 1024 * 1024) + b"]",
                          headers={"Content-Type": "application/json"}), 413, "request_too_large")

    session = await api.session(eng)
    await api.ok("POST", f"/sessions/{session['id']}/complete", eng, json={"outcome": "resolved"})
    _coded(await api.call("POST", f"/sessions/{session['id']}/complete", eng, json={"outcome": "resolved"}), 409)
    etag = (await api.call("GET", f"/sessions/{session['id']}", eng)).headers["etag"]
    _coded(await api.call("PUT", f"/sessions/{session['id']}", eng, json={"notes": "x"},
                          headers={"If-Match": etag.replace("-", "-9", 1)}), 412, "precondition_failed")

    handoff = await api.handoff(eng)
    claims = await asyncio.gather(*(api.call("POST", f"/handoffs/{handoff['id']}/claim", user)
                                    for user in (eng, eng2)))
    refused = [r for r in claims if r.status_code != 200]
    assert len(refused) == 1
    conflict = _coded(refused[0], 409)
    assert conflict.get("claimed_by") in (eng.id, eng2.id), conflict

    _coded(await client.post("/api/v1/auth/login/json", json={"email": "nobody@example.com", "password": "wrong1234"}),
           401)
    _coded(await client.post("/api/v1/auth/register", json={
        "email": team.admin.email, "password": "whatever-long-enough", "full_name": "X", "account_name": "Y"}), 409)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    steps = f"/sessions/{(await api.session(eng))['id']}/steps"
    note = {"kind": "note", "content": "a", "actor_type": "human"}
    await api.ok("POST", steps, eng, 201, json=note, headers=key)
    reused = await api.call("POST", steps, eng, headers=key, json={**note, "content": "b"})
    _coded(reused, 422, "idempotency_key_reused")
    _coded(await api.call("POST", f"/sessions/{session['id']}/steps", eng, headers={"Idempotency-Key": "a b"},
                          json={"kind": "note", "content": "b", "actor_type": "human"}), 422,
           "idempotency_key_invalid")


async def test_the_public_document_lists_every_registered_code_for_every_error_answer(api: Any) -> None:
    document = (await api.client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert set(schemas["ErrorCode"]["enum"]) == CODES
    assert schemas["ErrorResponse"]["properties"]["code"]["$ref"] == "#/components/schemas/ErrorCode"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.isdigit() and int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema.get("$ref") == "#/components/schemas/ErrorResponse" or (
                        set(schema["properties"]["code"]["enum"]) <= CODES), (method, path, status, schema)
            if method == "post":
                assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"]), (method, path)
