"""Sessions and steps through the HTTP API: roles, answering, the journal, completion, exports, tenancy."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

SESSIONS = "/api/v1/sessions"


def _answer(node_id: str, label: str) -> dict[str, dict[str, str]]:
    return {"answer": {"node_id": node_id, "option_label": label}}


async def test_session_starts_at_the_root_of_the_latest_version(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    before = datetime.now(UTC)
    session = await env.start_session(eng, tree["id"], context={"ticket": "T-1"})
    assert session["status"] == "active"
    assert (session["tree_id"], session["tree_version"]) == (tree["id"], 1)
    assert session["current_node_id"] == "start"
    assert session["current_node"]["text"] == "Is the printer powered on?"
    assert session["current_node"]["options"][0] == {"label": "Yes", "next_node_id": "restart"}
    assert session["title"] == tree["title"] == session["tree_title"]
    assert session["context"] == {"ticket": "T-1"}
    assert (session["started_by"], session["account_id"]) == (str(eng.user_id), str(eng.account_id))
    assert session["escalation"] is None and session["outcome"] is None and session["notes"] == ""
    started = datetime.fromisoformat(session["started_at"])
    assert started.utcoffset() == timedelta(0) and started >= before - timedelta(seconds=1)
    got = await env.client.get(f"{SESSIONS}/{session['id']}", headers=eng.headers)
    assert got.status_code == 200 and got.json() == session
    titled = await env.start_session(eng, tree["id"], title="Printer at reception", context="cannot print")
    assert (titled["title"], titled["context"]) == ("Printer at reception", "cannot print")


async def test_answering_follows_the_option_and_records_an_answer_step(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}"
    r = await env.client.put(url, json=_answer("start", "Yes"), headers=eng.headers)
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["current_node_id"] == "restart" and moved["current_node"]["kind"] == "action"
    steps = (await env.client.get(f"{url}/steps", headers=eng.headers)).json()
    assert steps["total"] == 1
    step = steps["items"][0]
    assert step["kind"] == "answer" and step["actor_type"] == "human" and step["actor_id"] == str(eng.user_id)
    assert (step["node_id"], step["option_label"], step["next_node_id"]) == ("start", "Yes", "restart")
    assert "Is the printer powered on?" in step["content"] and "Yes" in step["content"]


@pytest.mark.parametrize(
    ("answer", "reason", "code"),
    [
        (("start", "Perhaps"), "no option 'Perhaps'", "unknown_option"),
        (("restart", "Works now"), "not 'restart'", "answer_not_at_current_node"),
        (("ghost", "Yes"), "not 'ghost'", "answer_not_at_current_node"),
    ],
)
async def test_answer_with_an_option_that_does_not_exist_is_422(
    env, answer: tuple[str, str], reason: str, code: str
) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}"
    r = await env.client.put(url, json=_answer(*answer), headers=eng.headers)
    assert r.status_code == 422
    assert reason in r.json()["detail"] and r.json()["code"] == code
    assert (await env.client.get(url, headers=eng.headers)).json()["current_node_id"] == "start"
    assert (await env.client.get(f"{url}/steps", headers=eng.headers)).json()["total"] == 0


async def test_answering_at_a_terminal_node_is_422(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}"
    moved = await env.client.put(url, json=_answer("start", "No"), headers=eng.headers)
    assert moved.json()["current_node_id"] == "power"
    r = await env.client.put(url, json=_answer("power", "Yes"), headers=eng.headers)
    assert r.status_code == 422 and "ends the tree" in r.json()["detail"]


async def test_title_and_notes_update(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}"
    change = {"title": "Reception printer", "notes": "User: Ana\nExt 42"}
    r = await env.client.put(url, json=change, headers=eng.headers)
    assert r.status_code == 200
    assert (r.json()["title"], r.json()["notes"]) == ("Reception printer", "User: Ana\nExt 42")
    assert r.json()["updated_at"] > session["updated_at"]
    colleague = env.colleague(eng)  # any engineer of the account may work on it
    both = await env.client.put(url, json={"notes": "", **_answer("start", "Yes")}, headers=colleague.headers)
    assert (both.json()["notes"], both.json()["current_node_id"]) == ("", "restart")
    for bad in ({}, {"title": ""}, {"status": "completed"}, {"answer": {"node_id": "start"}}):
        assert (await env.client.put(url, json=bad, headers=eng.headers)).status_code == 422


async def test_steps_are_stored_in_utc_with_microseconds_and_listed_oldest_first(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}/steps"
    made = []
    for kind, actor in (("note", "human"), ("suggestion", "ai"), ("action", "human"), ("answer", "human")):
        r = await env.client.post(url, json={"kind": kind, "content": f"{kind} text", "actor_type": actor},
                                  headers=eng.headers)
        assert r.status_code == 201, r.text
        made.append(r.json())
    ai = made[1]
    assert ai["actor_type"] == "ai" and ai["actor_id"] is None and ai["recorded_by"] == str(eng.user_id)
    assert made[0]["actor_id"] == str(eng.user_id)
    assert all(re.search(r"T\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)$", s["created_at"]) for s in made)
    listed = (await env.client.get(url, headers=eng.headers)).json()
    assert listed["total"] == 4
    assert [s["id"] for s in listed["items"]] == [s["id"] for s in made]
    times = [s["created_at"] for s in listed["items"]]
    assert times == sorted(times)
    page = (await env.client.get(url, params={"limit": 2, "offset": 1}, headers=eng.headers)).json()
    assert [s["id"] for s in page["items"]] == [s["id"] for s in made[1:3]]
    pinned = await env.client.post(url, json={"kind": "note", "content": "here", "node_id": "start"},
                                   headers=eng.headers)
    assert pinned.status_code == 201 and pinned.json()["node_id"] == "start"
    assert pinned.json()["actor_type"] == "human"  # the default


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "shout", "content": "x"},
        {"kind": "note", "content": "   "},
        {"kind": "note", "content": "x", "actor_type": "robot"},
        {"kind": "note", "content": "x", "node_id": "not-in-tree"},
        {"kind": "note"},
    ],
)
async def test_invalid_steps_are_422(env, body: dict) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    r = await env.client.post(f"{SESSIONS}/{session['id']}/steps", json=body, headers=eng.headers)
    assert r.status_code == 422
    if "node_id" in body:  # a well-formed step naming a node its tree does not have: a domain refusal
        assert r.json()["code"] == "node_not_in_tree"


async def test_completed_session_is_409_for_every_write(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}"
    r = await env.client.post(f"{url}/complete", json={"outcome": "resolved", "summary": "Restarted"},
                              headers=eng.headers)
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["outcome"], done["summary"]) == ("completed", "resolved", "Restarted")
    assert done["completed_by"] == str(eng.user_id) and done["completed_at"] is not None
    again = await env.client.post(f"{url}/complete", json={"outcome": "unresolved"}, headers=eng.headers)
    title = await env.client.put(url, json={"title": "x"}, headers=eng.headers)
    answer = await env.client.put(url, json=_answer("start", "Yes"), headers=eng.headers)
    step = await env.client.post(f"{url}/steps", json={"kind": "note", "content": "late"}, headers=eng.headers)
    for refused in (again, title, answer, step):
        assert (refused.status_code, refused.json()["code"]) == (409, "session_completed")
    assert (await env.client.get(url, headers=eng.headers)).json() == done
    bad = await env.client.post(f"{SESSIONS}/{(await env.start_session(eng))['id']}/complete",
                                json={"outcome": "maybe"}, headers=eng.headers)
    assert bad.status_code == 422


async def test_viewer_reads_but_cannot_write(env) -> None:
    eng = env.caller()
    viewer = env.colleague(eng, "viewer")
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}"
    tree_id = session["tree_id"]
    assert (await env.client.post(SESSIONS, json={"tree_id": tree_id}, headers=viewer.headers)).status_code == 403
    assert (await env.client.put(url, json={"title": "x"}, headers=viewer.headers)).status_code == 403
    step = {"kind": "note", "content": "x"}
    assert (await env.client.post(f"{url}/steps", json=step, headers=viewer.headers)).status_code == 403
    done = {"outcome": "resolved"}
    assert (await env.client.post(f"{url}/complete", json=done, headers=viewer.headers)).status_code == 403
    assert (await env.client.get(url, headers=viewer.headers)).status_code == 200
    assert (await env.client.get(f"{url}/steps", headers=viewer.headers)).status_code == 200
    assert (await env.client.post(f"{url}/export", headers=viewer.headers)).status_code == 200
    assert (await env.client.get(SESSIONS, headers=viewer.headers)).json()["total"] == 0
    r = await env.client.get(SESSIONS, params={"scope": "account"}, headers=viewer.headers)
    assert (r.status_code, r.json()["code"]) == (403, "account_scope_forbidden")
    assert (await env.client.get(SESSIONS)).status_code == 401


async def test_list_is_the_callers_sessions_and_engineers_may_see_the_account(env) -> None:
    eng = env.caller()
    admin = env.colleague(eng, "admin")
    tree = await env.create_tree(eng)
    mine = [await env.start_session(eng, tree["id"]) for _ in range(3)]
    theirs = await env.start_session(admin, tree["id"])
    await env.start_session(env.caller(), None)  # another account
    own = (await env.client.get(SESSIONS, headers=eng.headers)).json()
    assert own["total"] == 3 and {s["id"] for s in own["items"]} == {s["id"] for s in mine}
    # Newest first.
    assert [s["id"] for s in own["items"]] == [s["id"] for s in reversed(mine)]
    everyone = (await env.client.get(SESSIONS, params={"scope": "account"}, headers=eng.headers)).json()
    assert everyone["total"] == 4 and theirs["id"] in {s["id"] for s in everyone["items"]}
    await env.client.post(f"{SESSIONS}/{mine[0]['id']}/complete", json={"outcome": "unresolved"}, headers=eng.headers)
    done = (await env.client.get(SESSIONS, params={"status": "completed"}, headers=eng.headers)).json()
    assert [s["id"] for s in done["items"]] == [mine[0]["id"]]
    page = (await env.client.get(SESSIONS, params={"limit": 1, "offset": 1}, headers=eng.headers)).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (3, 1, 1, 1)
    assert (await env.client.get(SESSIONS, params={"scope": "galaxy"}, headers=eng.headers)).status_code == 422


async def test_another_accounts_session_is_404_on_every_route(env) -> None:
    owner = env.caller()
    session = await env.start_session(owner)
    url = f"{SESSIONS}/{session['id']}"
    intruder = env.caller("admin")
    calls = [
        env.client.get(url, headers=intruder.headers),
        env.client.put(url, json={"title": "mine now"}, headers=intruder.headers),
        env.client.put(url, json=_answer("start", "Yes"), headers=intruder.headers),
        env.client.get(f"{url}/steps", headers=intruder.headers),
        env.client.post(f"{url}/steps", json={"kind": "note", "content": "x"}, headers=intruder.headers),
        env.client.post(f"{url}/complete", json={"outcome": "resolved"}, headers=intruder.headers),
        env.client.post(f"{url}/export", params={"format": "json"}, headers=intruder.headers),
        env.client.post(f"{url}/export", params={"format": "markdown"}, headers=intruder.headers),
    ]
    for call in calls:
        r = await call
        assert (r.status_code, r.json()["code"]) == (404, "session_not_found"), r.request.url
    unchanged = (await env.client.get(url, headers=owner.headers)).json()
    assert unchanged == session
    assert (await env.client.get(f"{url}/steps", headers=owner.headers)).json()["total"] == 0
    listed = (await env.client.get(SESSIONS, params={"scope": "account"}, headers=intruder.headers)).json()
    assert listed["total"] == 0


async def test_unknown_ids_are_404(env) -> None:
    eng = env.caller()
    url = f"{SESSIONS}/{uuid.uuid4()}"
    assert (await env.client.get(url, headers=eng.headers)).status_code == 404
    done = await env.client.post(f"{url}/complete", json={"outcome": "resolved"}, headers=eng.headers)
    assert done.status_code == 404
    r = await env.client.post(SESSIONS, json={"tree_id": str(uuid.uuid4())}, headers=eng.headers)
    assert (r.status_code, r.json()["code"]) == (404, "tree_not_found")
    assert (await env.client.post(SESSIONS, json={}, headers=eng.headers)).status_code == 422


async def _walk(env, who, session_id: str, *answers: tuple[str, str]) -> None:
    for node_id, label in answers:
        r = await env.client.put(f"{SESSIONS}/{session_id}", json=_answer(node_id, label), headers=who.headers)
        assert r.status_code == 200, r.text


async def test_export_json_has_the_path_every_step_and_the_outcome(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng, title="Reception printer", context={"ticket": "T-9"})
    sid = session["id"]
    await _walk(env, eng, sid, ("start", "Yes"))
    await env.client.post(f"{SESSIONS}/{sid}/steps", json={"kind": "suggestion", "content": "Check the queue",
                                                           "actor_type": "ai"}, headers=eng.headers)
    await _walk(env, eng, sid, ("restart", "Works now"))
    await env.client.post(f"{SESSIONS}/{sid}/complete", json={"outcome": "resolved", "summary": "Spooler"},
                          headers=eng.headers)
    r = await env.client.post(f"{SESSIONS}/{sid}/export", params={"format": "json"}, headers=eng.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["format"] == "resolutionflow.session-export" and doc["format_version"] == 1
    assert doc["session"]["id"] == sid and doc["session"]["context"] == {"ticket": "T-9"}
    assert doc["tree"] == {"id": session["tree_id"], "version": 1, "title": "Printer does not print",
                           "category": "hardware"}
    assert [(p["node_id"], p["option_label"]) for p in doc["path"]] == [
        ("start", "Yes"), ("restart", "Works now"), ("done", None)
    ]
    assert [s["kind"] for s in doc["steps"]] == ["answer", "suggestion", "answer"]
    assert (doc["outcome"], doc["summary"]) == ("resolved", "Spooler")
    assert doc["completed_at"] == doc["session"]["completed_at"]


async def test_export_markdown_reads_as_a_document(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng, title="Reception printer")
    sid = session["id"]
    await _walk(env, eng, sid, ("start", "Yes"))
    await env.client.post(f"{SESSIONS}/{sid}/steps", json={"kind": "note", "content": "Queue had 40 jobs"},
                          headers=eng.headers)
    r = await env.client.post(f"{SESSIONS}/{sid}/export", headers=eng.headers)  # markdown is the default
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    md = r.text
    assert md.startswith("# Reception printer\n")
    assert "## Path through the tree" in md and "## Journal" in md and "## Outcome" in md
    assert "1. **Question:** Is the printer powered on? → **Yes**" in md
    assert "2. **Action:** Restart the print spooler. ← current step" in md
    assert "> Queue had 40 jobs" in md
    assert "still in progress" in md
    bad = await env.client.post(f"{SESSIONS}/{sid}/export", params={"format": "pdf"}, headers=eng.headers)
    assert bad.status_code == 422


async def test_session_stays_on_its_tree_version_after_a_replacement(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    session = await env.start_session(eng, tree["id"])
    body = env.tree_body(title="Printer v2", root_node_id="check")
    body["nodes"] = [
        {"id": "check", "kind": "question", "text": "Is there paper?",
         "options": [{"label": "Yes", "next_node_id": "ok"}, {"label": "No", "next_node_id": "paper"}]},
        {"id": "ok", "kind": "escalation", "text": "Call the vendor."},
        {"id": "paper", "kind": "solution", "text": "Add paper."},
    ]
    assert (await env.client.put(f"/api/v1/trees/{tree['id']}", json=body, headers=eng.headers)).status_code == 200
    # The old session still answers v1's nodes; a new one starts on v2.
    await _walk(env, eng, session["id"], ("start", "Yes"), ("restart", "Still broken"))
    fresh = await env.start_session(eng, tree["id"])
    assert (fresh["tree_version"], fresh["current_node_id"]) == (2, "check")
    old = (await env.client.get(f"{SESSIONS}/{session['id']}", headers=eng.headers)).json()
    assert (old["tree_version"], old["current_node_id"], old["tree_title"]) == (1, "esc", "Printer does not print")
    doc = (await env.client.post(f"{SESSIONS}/{session['id']}/export", params={"format": "json"},
                                 headers=eng.headers)).json()
    assert doc["tree"]["version"] == 1
    assert [p["node_id"] for p in doc["path"]] == ["start", "restart", "esc"]
    assert doc["path"][-1]["text"] == "Escalate to the hardware team."


async def test_deleted_tree_keeps_its_sessions_history(env) -> None:
    admin = env.caller("admin")
    session = await env.start_session(admin)
    sid = session["id"]
    assert (await env.client.delete(f"/api/v1/trees/{session['tree_id']}", headers=admin.headers)).status_code == 204
    await _walk(env, admin, sid, ("start", "No"))
    got = (await env.client.get(f"{SESSIONS}/{sid}", headers=admin.headers)).json()
    assert got["current_node_id"] == "power"
    r = await env.client.post(f"{SESSIONS}/{sid}/export", params={"format": "json"}, headers=admin.headers)
    assert r.status_code == 200 and [p["node_id"] for p in r.json()["path"]] == ["start", "power"]
    assert (await env.client.post(f"{SESSIONS}/{sid}/complete", json={"outcome": "resolved"},
                                  headers=admin.headers)).status_code == 200


async def test_concurrent_answers_and_completions_apply_once(env) -> None:
    eng = env.caller()
    session = await env.start_session(eng)
    url = f"{SESSIONS}/{session['id']}"
    answers = await asyncio.gather(
        *(env.client.put(url, json=_answer("start", label), headers=eng.headers) for label in ("Yes", "No") * 3)
    )
    assert sorted(r.status_code for r in answers) == [200, 422, 422, 422, 422, 422]
    assert (await env.client.get(f"{url}/steps", headers=eng.headers)).json()["total"] == 1
    completions = await asyncio.gather(
        *(env.client.post(f"{url}/complete", json={"outcome": "resolved"}, headers=eng.headers) for _ in range(4))
    )
    assert sorted(r.status_code for r in completions) == [200, 409, 409, 409]
