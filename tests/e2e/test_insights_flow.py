"""Section 7 from real events: a tree, a session, an escalation, a claim and a step through the public API."""

from __future__ import annotations

import csv
import io
from typing import Any

from rf_testsupport import wait_until

BASE = "/analytics/flowpilot/escalations"


async def test_a_claimed_escalation_appears_in_every_insight_with_its_tree_priority_and_claimer(api: Any) -> None:
    team = await api.account("engineer", "engineer2")
    first, expert = team.users["engineer"], team.users["engineer2"]
    tree = await api.tree(team.admin)
    session = await api.ok("POST", "/sessions", first, 201, json={"tree_id": tree["id"], "title": "Printer"})
    handoff = await api.handoff(first, session["id"])  # priority high
    await api.ok("POST", f"/handoffs/{handoff['id']}/claim", expert)
    await api.ok("POST", f"/sessions/{session['id']}/steps", expert, 201,
                 json={"kind": "action", "content": "Replaced the toner", "actor_type": "human"})

    async def tree_known() -> bool:
        # The session-started, requested, claimed and step events have all been applied.
        body = await api.ok("GET", f"{BASE}/breakdown?period=7d&by=tree", team.admin)
        groups = body["groups"]
        return bool(groups and groups[0]["key"] == tree["id"] and groups[0]["n_handoffs_with_action"] == 1)

    await wait_until(tree_known, timeout_s=60, interval_s=0.2)
    by_priority = await api.ok("GET", f"{BASE}/breakdown?period=7d&by=priority", first)
    assert [(g["key"], g["label"], g["n_handoffs_claimed"]) for g in by_priority["groups"]] == [("high", "high", 1)]
    by_claimer = await api.ok("GET", f"{BASE}/breakdown?period=30d&by=claimer", first)
    assert [g["key"] for g in by_claimer["groups"]] == [expert.id]

    page = await api.ok("GET", f"{BASE}/handoffs?period=7d&order=newest", first)
    assert page["total"] == 1
    item: dict[str, Any] = page["items"][0]
    assert (item["handoff_id"], item["session_id"], item["tree_id"]) == (handoff["id"], session["id"], tree["id"])
    assert (item["priority"], item["claimed_by"], item["first_actor_type"]) == ("high", expert.id, "human")
    assert item["delta_seconds"] >= 0 and item["waiting_seconds"] is None

    exported = await api.call("GET", f"{BASE}/handoffs?period=7d&format=csv", first)
    assert exported.status_code == 200 and exported.headers["content-disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(exported.text, newline="")))
    assert rows[0] == list(item) and len(rows) == 2
    assert dict(zip(rows[0], rows[1], strict=True))["handoff_id"] == handoff["id"]

    series = await api.ok("GET", f"{BASE}/series?period=7d&tz=Europe/Paris", first)
    assert sum(d["n_handoffs_claimed"] for d in series["days"]) == 1
    assert sum(series["histogram"]["counts"]) == 1
    assert series["data_as_of"] is not None
