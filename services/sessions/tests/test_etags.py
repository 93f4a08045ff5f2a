"""ETag and If-Match on trees and sessions: stale writes are 412, concurrent writes with one ETag have one winner."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

TREES = "/api/v1/trees"
SESSIONS = "/api/v1/sessions"
STALE = {"detail", "code"}


def _precondition_failed(r: Any) -> None:
    assert r.status_code == 412, r.text
    body = r.json()
    assert body.keys() == STALE and body["code"] == "precondition_failed"
    assert isinstance(body["detail"], str) and body["detail"]
    assert "etag" not in {k.lower() for k in r.headers}


async def test_tree_get_and_writes_carry_the_versions_etag(env) -> None:
    eng = env.caller()
    r = await env.client.post(TREES, json=env.tree_body(), headers=eng.headers)
    assert r.status_code == 201
    tree_id = r.json()["id"]
    assert r.headers["etag"] == f'"t-{tree_id}-1"'
    got = await env.client.get(f"{TREES}/{tree_id}", headers=eng.headers)
    assert got.headers["etag"] == f'"t-{tree_id}-1"'
    old = await env.client.get(f"{TREES}/{tree_id}", params={"version": 1}, headers=eng.headers)
    assert old.headers["etag"] == got.headers["etag"]

    put = await env.client.put(
        f"{TREES}/{tree_id}", json=env.tree_body(title="v2"), headers={**eng.headers, "If-Match": got.headers["etag"]}
    )
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 2
    assert put.headers["etag"] == f'"t-{tree_id}-2"'
    latest = await env.client.get(f"{TREES}/{tree_id}", headers=eng.headers)
    assert latest.headers["etag"] == put.headers["etag"]


async def test_tree_put_with_a_stale_etag_is_412_and_changes_nothing(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    first = f'"t-{tree["id"]}-1"'
    ok = await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(title="v2"),
                              headers={**eng.headers, "If-Match": first})
    assert ok.status_code == 200
    stale = await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(title="lost update"),
                                 headers={**eng.headers, "If-Match": first})
    _precondition_failed(stale)
    latest = await env.client.get(f"{TREES}/{tree['id']}", headers=eng.headers)
    assert latest.json() == ok.json()
    assert latest.headers["etag"] == ok.headers["etag"]


@pytest.mark.parametrize("if_match", [None, "*"])
async def test_tree_put_without_a_condition_or_with_star_writes_as_before(env, if_match: str | None) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(title="v2"), headers=eng.headers)
    extra = {} if if_match is None else {"If-Match": if_match}
    r = await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(title="v3"),
                             headers={**eng.headers, **extra})
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["title"]) == (3, "v3")
    assert r.headers["etag"] == f'"t-{tree["id"]}-3"'


@pytest.mark.parametrize(
    ("template", "expect"),
    [
        ('"t-other-1", {current}', 200),  # a list matches when any member does
        ('{current} , "t-other-1"', 200),
        ('"t-other-1", "t-other-2"', 412),
        ("W/{current}", 412),  # If-Match compares strongly: a weak tag never matches
        ('W/"t-other-1", W/{current}', 412),
        ("{unquoted}", 412),  # not an entity tag at all
    ],
)
async def test_if_match_lists_and_weak_tags_follow_rfc_9110(env, template: str, expect: int) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    current = f'"t-{tree["id"]}-1"'
    header = template.format(current=current, unquoted=current.strip('"'))
    r = await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(title="v2"),
                             headers={**eng.headers, "If-Match": header})
    if expect == 412:
        _precondition_failed(r)
    else:
        assert r.status_code == 200, r.text
    version = (await env.client.get(f"{TREES}/{tree['id']}", headers=eng.headers)).json()["version"]
    assert version == (2 if expect == 200 else 1)


async def test_twenty_concurrent_tree_puts_with_one_etag_have_exactly_one_winner(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    etag = f'"t-{tree["id"]}-1"'

    async def put(n: int) -> Any:
        return await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(title=f"writer {n}"),
                                    headers={**eng.headers, "If-Match": etag})

    answers = await asyncio.gather(*(put(n) for n in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [412] * 19, codes
    winner = next(r for r in answers if r.status_code == 200)
    for loser in (r for r in answers if r.status_code == 412):
        _precondition_failed(loser)
    latest = await env.client.get(f"{TREES}/{tree['id']}", headers=eng.headers)
    assert latest.json()["version"] == 2 and latest.json()["title"] == winner.json()["title"]
    missing = await env.client.get(f"{TREES}/{tree['id']}", params={"version": 3}, headers=eng.headers)
    assert missing.status_code == 404


async def test_session_etag_changes_with_every_write(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    r = await env.client.post(SESSIONS, json={"tree_id": tree["id"]}, headers=eng.headers)
    assert r.status_code == 201
    session_id, created = r.json()["id"], r.headers["etag"]
    assert created.startswith(f'"s-{session_id}-') and created.endswith('"')
    got = await env.client.get(f"{SESSIONS}/{session_id}", headers=eng.headers)
    assert got.headers["etag"] == created

    put = await env.client.put(f"{SESSIONS}/{session_id}", json={"notes": "checked cables"},
                               headers={**eng.headers, "If-Match": created})
    assert put.status_code == 200, put.text
    assert put.headers["etag"] != created
    step = await env.client.post(f"{SESSIONS}/{session_id}/steps", json={"kind": "note", "content": "still off"},
                                 headers=eng.headers)
    assert step.status_code == 201
    after_step = (await env.client.get(f"{SESSIONS}/{session_id}", headers=eng.headers)).headers["etag"]
    assert after_step not in (created, put.headers["etag"])
    done = await env.client.post(f"{SESSIONS}/{session_id}/complete", json={"outcome": "resolved"},
                                 headers=eng.headers)
    assert done.status_code == 200
    assert done.headers["etag"] not in (created, put.headers["etag"], after_step)
    assert (await env.client.get(f"{SESSIONS}/{session_id}", headers=eng.headers)).headers["etag"] == done.headers[
        "etag"
    ]


async def test_session_put_with_a_stale_etag_is_412_and_changes_nothing(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    path = f"{SESSIONS}/{session['id']}"
    first = (await env.client.get(path, headers=eng.headers)).headers["etag"]
    ok = await env.client.put(path, json={"title": "renamed"}, headers={**eng.headers, "If-Match": first})
    assert ok.status_code == 200
    stale = await env.client.put(path, json={"title": "lost", "answer": {"node_id": "start", "option_label": "No"}},
                                 headers={**eng.headers, "If-Match": first})
    _precondition_failed(stale)
    now = await env.client.get(path, headers=eng.headers)
    assert now.json() == ok.json() and now.headers["etag"] == ok.headers["etag"]
    steps = await env.client.get(f"{path}/steps", headers=eng.headers)
    assert steps.json()["total"] == 0

    for extra in ({}, {"If-Match": "*"}):
        r = await env.client.put(path, json={"notes": f"as before {extra}"}, headers={**eng.headers, **extra})
        assert r.status_code == 200, r.text


async def test_twenty_concurrent_session_puts_with_one_etag_have_exactly_one_winner(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    path = f"{SESSIONS}/{session['id']}"
    etag = (await env.client.get(path, headers=eng.headers)).headers["etag"]

    async def put(n: int) -> Any:
        return await env.client.put(path, json={"notes": f"writer {n}"}, headers={**eng.headers, "If-Match": etag})

    answers = await asyncio.gather(*(put(n) for n in range(20)))
    assert sorted(r.status_code for r in answers) == [200] + [412] * 19
    winner = next(r for r in answers if r.status_code == 200)
    now = await env.client.get(path, headers=eng.headers)
    assert now.json()["notes"] == winner.json()["notes"]
    assert now.headers["etag"] == winner.headers["etag"]


async def test_if_match_on_another_accounts_tree_is_still_404(env) -> None:
    owner, stranger = env.caller(), env.caller()
    tree = await env.create_tree(owner)
    r = await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(),
                             headers={**stranger.headers, "If-Match": f'"t-{tree["id"]}-1"'})
    assert r.status_code == 404
