"""One team's day through the public API: register, build a tree, troubleshoot, escalate, claim, act, measure."""

from __future__ import annotations

from typing import Any

from rf_testsupport import wait_until


async def test_an_escalation_claimed_and_acted_on_shows_up_in_the_metric(api: Any) -> None:
    team = await api.account("engineer", "engineer2")
    first, expert = team.users["engineer"], team.users["engineer2"]

    me = await api.ok("GET", "/auth/me", first)
    assert me["role"] == "engineer" and me["account_id"] == team.id

    tree = await api.tree(team.admin)
    assert tree["version"] == 1 and tree["account_id"] == team.id
    session = await api.ok("POST", "/sessions", first, 201, json={"tree_id": tree["id"], "title": "Printer"})
    assert session["status"] == "active" and session["current_node_id"] == "q1"

    moved = await api.ok("PUT", f"/sessions/{session['id']}", first,
                         json={"answer": {"node_id": "q1", "option_label": "no"}})
    assert moved["current_node_id"] == "e1"

    handoff = await api.handoff(first, session["id"])
    assert handoff["status"] == "open" and handoff["session_id"] == session["id"]
    queue = await api.ok("GET", "/handoffs?status=open", expert)
    assert [h["id"] for h in queue["items"]] == [handoff["id"]]

    claimed = await api.ok("POST", f"/handoffs/{handoff['id']}/claim", expert)
    assert claimed["status"] == "claimed" and claimed["claimed_by"] == expert.id

    step = await api.ok("POST", f"/sessions/{session['id']}/steps", expert, 201,
                        json={"kind": "action", "content": "Replaced the toner", "actor_type": "human"})
    assert step["actor_id"] == expert.id

    async def metric_counts_it() -> bool:
        metric = await api.ok("GET", "/analytics/flowpilot/escalations?period=7d", team.admin)
        return bool(metric["n_handoffs_claimed"] == 1 and metric["n_handoffs_with_action"] == 1)

    await wait_until(metric_counts_it, timeout_s=60, interval_s=0.2)
    metric = await api.ok("GET", "/analytics/flowpilot/escalations?period=7d", first)
    assert metric["period"] == "7d"
    assert metric["avg_seconds"] is not None and metric["avg_seconds"] >= 0
    assert metric["median_seconds"] == metric["avg_seconds"]

    steps = await api.ok("GET", f"/sessions/{session['id']}/steps", team.users["engineer"])
    assert step["id"] in [s["id"] for s in steps["items"]]

    resolved = await api.ok("POST", f"/handoffs/{handoff['id']}/resolve", expert,
                            json={"resolution_note": "toner"})
    assert resolved["status"] == "resolved"
    done = await api.ok("POST", f"/sessions/{session['id']}/complete", first, json={"outcome": "resolved"})
    assert done["status"] == "completed"
    exported = await api.call("POST", f"/sessions/{session['id']}/export?format=markdown", team.admin)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/markdown")
    assert "Replaced the toner" in exported.text
