"""Two accounts: account A's admin aimed at every object id of account B gets 404, never 200 or 403."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio


@dataclass
class Objects:
    """Account B's objects, and account A, which must not be able to see or touch them."""

    a: Any
    b: Any
    tree: dict[str, Any]
    session: dict[str, Any]
    handoff: dict[str, Any]
    claimed: dict[str, Any]
    user_id: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def objects(api: Any) -> Objects:
    a = await api.account("engineer")
    b = await api.account("engineer")
    tree = await api.tree(b.admin)
    session = await api.session(b.admin, tree["id"])
    handoff = await api.handoff(b.admin, session["id"])
    claimed = await api.handoff(b.admin)
    await api.ok("POST", f"/handoffs/{claimed['id']}/claim", b.users["engineer"])
    return Objects(a, b, tree, session, handoff, claimed, b.users["engineer"].id)


def _calls(o: Objects) -> list[tuple[str, str, Any]]:
    tree, session, handoff, claimed = o.tree["id"], o.session["id"], o.handoff["id"], o.claimed["id"]
    return [
        ("GET", f"/trees/{tree}", None),
        ("GET", f"/trees/{tree}?version=1", None),
        ("PUT", f"/trees/{tree}", {**_tree(), "title": "hijacked"}),
        ("DELETE", f"/trees/{tree}", None),
        ("POST", "/sessions", {"tree_id": tree}),
        ("GET", f"/sessions/{session}", None),
        ("PUT", f"/sessions/{session}", {"title": "hijacked"}),
        ("GET", f"/sessions/{session}/steps", None),
        ("POST", f"/sessions/{session}/steps", {"kind": "note", "content": "hijacked"}),
        ("POST", f"/sessions/{session}/complete", {"outcome": "unresolved"}),
        ("POST", f"/sessions/{session}/export?format=json", None),
        ("POST", f"/sessions/{session}/export?format=markdown", None),
        ("POST", "/handoffs", {"session_id": session, "reason": "hijack", "priority": "urgent"}),
        ("GET", f"/handoffs/{handoff}", None),
        ("POST", f"/handoffs/{handoff}/claim", None),
        ("POST", f"/handoffs/{claimed}/release", None),
        ("POST", f"/handoffs/{claimed}/resolve", {"resolution_note": "hijacked"}),
        ("PATCH", f"/users/{o.user_id}", {"is_active": False}),
    ]


def _tree() -> dict[str, Any]:
    return {"title": "t", "root_node_id": "s", "nodes": [{"id": "s", "kind": "solution", "text": "done"}]}


CALL_IDS = ["GET tree", "GET tree version", "PUT tree", "DELETE tree", "POST session on tree", "GET session",
            "PUT session", "GET steps", "POST step", "POST complete", "POST export json", "POST export markdown",
            "POST handoff on session", "GET handoff", "POST claim", "POST release", "POST resolve", "PATCH user"]


@pytest.mark.parametrize("index", range(len(CALL_IDS)), ids=CALL_IDS)
async def test_another_accounts_object_is_not_found(api: Any, objects: Objects, index: int) -> None:
    method, path, body = _calls(objects)[index]
    r = await api.call(method, path, objects.a.admin, json=body)
    assert r.status_code == 404, (method, path, r.status_code, r.text)


async def test_another_accounts_objects_never_show_in_lists(api: Any, objects: Objects) -> None:
    a = objects.a.admin
    assert objects.tree["id"] not in [t["id"] for t in (await api.ok("GET", "/trees", a))["items"]]
    assert objects.tree["id"] not in [t["id"] for t in (await api.ok("GET", "/trees/search?q=printer", a))["items"]]
    sessions = await api.ok("GET", "/sessions?scope=account", a)
    assert objects.session["id"] not in [s["id"] for s in sessions["items"]]
    handoffs = await api.ok("GET", "/handoffs", a)
    assert {h["id"] for h in handoffs["items"]}.isdisjoint({objects.handoff["id"], objects.claimed["id"]})
    users = await api.ok("GET", "/users", a)
    assert objects.user_id not in [u["id"] for u in users["items"]]


async def test_account_b_finds_everything_untouched(api: Any, objects: Objects) -> None:
    # Runs after the attempts above (same module, declared later).
    b = objects.b.admin
    tree = await api.ok("GET", f"/trees/{objects.tree['id']}", b)
    assert tree["version"] == 1 and tree["title"] == objects.tree["title"]
    session = await api.ok("GET", f"/sessions/{objects.session['id']}", b)
    assert session["status"] == "active" and session["title"] == objects.session["title"]
    steps = (await api.ok("GET", f"/sessions/{objects.session['id']}/steps", b))["items"]
    assert all("hijacked" not in s["content"] for s in steps)
    assert (await api.ok("GET", f"/handoffs/{objects.handoff['id']}", b))["status"] == "open"
    claimed = await api.ok("GET", f"/handoffs/{objects.claimed['id']}", b)
    assert claimed["status"] == "claimed" and claimed["claimed_by"] == objects.user_id
    assert (await api.ok("GET", "/auth/me", objects.b.users["engineer"]))["role"] == "engineer"
