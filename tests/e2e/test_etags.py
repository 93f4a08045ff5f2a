"""Through the gateway: ETag comes back to the client, If-Match reaches the service, a stale or racing PUT is 412."""

from __future__ import annotations

import asyncio
from typing import Any


def _stale(r: Any) -> None:
    assert r.status_code == 412, r.text
    assert r.json()["code"] == "precondition_failed" and isinstance(r.json()["detail"], str)


async def test_tree_etag_and_if_match_through_the_gateway(api: Any) -> None:
    team = await api.account("engineer")
    eng = team.users["engineer"]
    created = await api.call("POST", "/trees", eng, json=api.tree_body())
    assert created.status_code == 201
    tree_id = created.json()["id"]
    got = await api.call("GET", f"/trees/{tree_id}", eng)
    assert got.headers["etag"] == created.headers["etag"] == f'"t-{tree_id}-1"'

    put = await api.call("PUT", f"/trees/{tree_id}", eng, json=api.tree_body("v2"),
                         headers={"If-Match": got.headers["etag"]})
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"t-{tree_id}-2"'
    _stale(await api.call("PUT", f"/trees/{tree_id}", eng, json=api.tree_body("lost"),
                          headers={"If-Match": got.headers["etag"]}))
    assert (await api.ok("GET", f"/trees/{tree_id}", eng))["title"] == "v2"
    for extra in ({}, {"If-Match": "*"}):
        r = await api.call("PUT", f"/trees/{tree_id}", eng, json=api.tree_body("v3"), headers=extra)
        assert r.status_code == 200, r.text

    etag = (await api.call("GET", f"/trees/{tree_id}", eng)).headers["etag"]
    answers = await asyncio.gather(*(
        api.call("PUT", f"/trees/{tree_id}", eng, json=api.tree_body(f"writer {n}"), headers={"If-Match": etag})
        for n in range(20)
    ))
    assert sorted(r.status_code for r in answers) == [200] + [412] * 19
    for loser in (r for r in answers if r.status_code == 412):
        _stale(loser)
    assert (await api.ok("GET", f"/trees/{tree_id}", eng))["version"] == 5


async def test_session_etag_and_if_match_through_the_gateway(api: Any) -> None:
    team = await api.account("engineer")
    eng = team.users["engineer"]
    session = await api.session(eng)
    path = f"/sessions/{session['id']}"
    etag = (await api.call("GET", path, eng)).headers["etag"]
    assert etag.startswith(f'"s-{session["id"]}-')
    put = await api.call("PUT", path, eng, json={"notes": "first"}, headers={"If-Match": etag})
    assert put.status_code == 200 and put.headers["etag"] != etag
    _stale(await api.call("PUT", path, eng, json={"notes": "lost"}, headers={"If-Match": etag}))
    assert (await api.ok("GET", path, eng))["notes"] == "first"


async def test_a_malformed_if_match_is_412_with_a_reason(api: Any) -> None:
    team = await api.account("engineer")
    eng = team.users["engineer"]
    tree = await api.tree(eng)
    r = await api.call("PUT", f"/trees/{tree['id']}", eng, json=api.tree_body("v2"), headers={"If-Match": "t-1"})
    _stale(r)
    assert "quoted entity tags" in r.json()["detail"]
    assert (await api.ok("GET", f"/trees/{tree['id']}", eng))["version"] == 1
