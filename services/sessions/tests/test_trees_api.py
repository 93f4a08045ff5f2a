"""Decision trees through the HTTP API: roles, graph validation, versions, soft delete, categories, search."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from rf_testsupport import Caller

pytestmark = pytest.mark.asyncio(loop_scope="session")

TREES = "/api/v1/trees"


def _node(body: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in body["nodes"] if n["id"] == node_id)


def _break(rule: str, body: dict[str, Any]) -> str:
    """Make `body` break `rule`; returns the node the 422 must name."""
    if rule == "root_missing":
        body["root_node_id"] = "nowhere"
        return "nowhere"
    if rule == "unknown_next_node":
        _node(body, "restart")["options"][0]["next_node_id"] = "ghost"
        return "restart"
    if rule == "unreachable_from_root":
        body["nodes"].append({"id": "island", "kind": "solution", "text": "Nobody gets here."})
        return "island"
    if rule == "no_path_to_terminal":
        # restart only loops back to itself: from there nothing ends the session.
        body["nodes"] = [n for n in body["nodes"] if n["id"] not in ("done", "esc")]
        _node(body, "restart")["options"] = [{"label": "Again", "next_node_id": "restart"}]
        return "restart"
    if rule == "duplicate_node_id":
        body["nodes"].append({"id": "power", "kind": "solution", "text": "A second node called power."})
        return "power"
    if rule == "terminal_has_options":
        _node(body, "done")["options"] = [{"label": "More", "next_node_id": "esc"}]
        return "done"
    if rule == "question_without_options":
        body["nodes"].append({"id": "q2", "kind": "question", "text": "Dangling?", "options": []})
        _node(body, "start")["options"].append({"label": "Maybe", "next_node_id": "q2"})
        return "q2"
    if rule == "duplicate_option_label":
        _node(body, "start")["options"][1]["label"] = "Yes"
        return "start"
    raise AssertionError(rule)


RULES = [
    "root_missing",
    "unknown_next_node",
    "unreachable_from_root",
    "no_path_to_terminal",
    "duplicate_node_id",
    "terminal_has_options",
    "question_without_options",
    "duplicate_option_label",
]


async def test_engineer_creates_a_tree_and_reads_it_back(env) -> None:
    eng = env.caller("engineer")
    created = await env.create_tree(eng)
    assert created["version"] == 1
    assert created["account_id"] == str(eng.account_id)
    assert created["created_by"] == str(eng.user_id)
    assert created["node_count"] == 5 and created["root_node_id"] == "start"
    r = await env.client.get(f"{TREES}/{created['id']}", headers=eng.colleague(env.private_pem, "viewer").headers)
    assert r.status_code == 200
    assert r.json() == created


@pytest.mark.parametrize("rule", RULES)
async def test_tree_breaking_a_rule_is_422_naming_node_and_rule(env, rule: str) -> None:
    eng = env.caller()
    body = env.tree_body()
    node_id = _break(rule, body)
    r = await env.client.post(TREES, json=body, headers=eng.headers)
    assert r.status_code == 422, r.text
    assert {"rule": rule, "node_id": node_id} in [{k: v[k] for k in ("rule", "node_id")} for v in r.json()["errors"]]
    listed = await env.client.get(TREES, headers=eng.headers)
    assert listed.json()["total"] == 0


async def test_replacing_with_an_invalid_tree_is_422_and_keeps_the_version(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    body = env.tree_body()
    _break("unknown_next_node", body)
    r = await env.client.put(f"{TREES}/{tree['id']}", json=body, headers=eng.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["rule"] == "unknown_next_node" and isinstance(r.json()["detail"], str)
    assert (await env.client.get(f"{TREES}/{tree['id']}", headers=eng.headers)).json()["version"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"nodes": []},
        {"title": "   "},
        {"root_node_id": ""},
        {"unexpected": 1},
        {"nodes": [{"id": "a", "kind": "riddle", "text": "?", "options": []}], "root_node_id": "a"},
    ],
)
async def test_malformed_tree_body_is_422(env, change: dict[str, Any]) -> None:
    r = await env.client.post(TREES, json=env.tree_body(**change), headers=env.caller().headers)
    assert r.status_code == 422


async def test_replace_creates_a_new_version_and_keeps_the_old_one(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng)
    body = env.tree_body(title="Printer does not print (v2)")
    _node(body, "power")["text"] = "Plug the printer in and switch it on."
    editor = env.colleague(eng)
    r = await env.client.put(f"{TREES}/{tree['id']}", json=body, headers=editor.headers)
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert (v2["id"], v2["version"], v2["title"]) == (tree["id"], 2, "Printer does not print (v2)")
    assert v2["created_at"] == tree["created_at"]
    latest = (await env.client.get(f"{TREES}/{tree['id']}", headers=eng.headers)).json()
    assert latest == v2
    v1 = (await env.client.get(f"{TREES}/{tree['id']}", params={"version": 1}, headers=eng.headers)).json()
    assert v1["version"] == 1 and v1["title"] == tree["title"] and v1["nodes"] == tree["nodes"]
    missing = await env.client.get(f"{TREES}/{tree['id']}", params={"version": 3}, headers=eng.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "tree_version_not_found")
    listed = (await env.client.get(TREES, headers=eng.headers)).json()
    assert [(t["id"], t["version"]) for t in listed["items"]] == [(tree["id"], 2)]


async def test_roles_viewer_reads_engineer_writes_admin_deletes(env) -> None:
    admin = env.caller("admin")
    eng, viewer = env.colleague(admin, "engineer"), env.colleague(admin, "viewer")
    tree = await env.create_tree(eng)
    url = f"{TREES}/{tree['id']}"
    for path in (TREES, f"{TREES}/categories", url):
        assert (await env.client.get(path, headers=viewer.headers)).status_code == 200
    assert (await env.client.get(f"{TREES}/search", params={"q": "printer"}, headers=viewer.headers)).status_code == 200
    assert (await env.client.post(TREES, json=env.tree_body(), headers=viewer.headers)).status_code == 403
    assert (await env.client.put(url, json=env.tree_body(), headers=viewer.headers)).status_code == 403
    assert (await env.client.delete(url, headers=viewer.headers)).status_code == 403
    assert (await env.client.delete(url, headers=eng.headers)).status_code == 403
    assert (await env.client.post(TREES, json=env.tree_body(), headers=admin.headers)).status_code == 201
    r = await env.client.delete(url, headers=admin.headers)
    assert r.status_code == 204 and r.content == b""


async def test_requests_without_a_valid_token_are_401(env) -> None:
    assert (await env.client.get(TREES)).status_code == 401
    assert (await env.client.get(TREES, headers={"Authorization": "Bearer nonsense"})).status_code == 401
    from rfkit.auth import generate_keypair

    stranger = Caller(generate_keypair()[0], role="admin")  # signed with a key the service does not trust
    assert (await env.client.post(TREES, json=env.tree_body(), headers=stranger.headers)).status_code == 401


async def test_soft_deleted_tree_leaves_lists_search_and_reads(env) -> None:
    admin = env.caller("admin")
    tree = await env.create_tree(admin, title="Unique zebra router guide")
    url = f"{TREES}/{tree['id']}"
    assert (await env.client.delete(url, headers=admin.headers)).status_code == 204
    assert (await env.client.get(url, headers=admin.headers)).status_code == 404
    assert (await env.client.get(url, params={"version": 1}, headers=admin.headers)).status_code == 404
    assert (await env.client.put(url, json=env.tree_body(), headers=admin.headers)).status_code == 404
    again = await env.client.delete(url, headers=admin.headers)
    assert (again.status_code, again.json()["code"]) == (404, "tree_not_found")
    assert (await env.client.get(TREES, headers=admin.headers)).json()["total"] == 0
    assert (await env.client.get(f"{TREES}/categories", headers=admin.headers)).json() == []
    found = await env.client.get(f"{TREES}/search", params={"q": "zebra"}, headers=admin.headers)
    assert found.json()["items"] == []
    r = await env.client.post("/api/v1/sessions", json={"tree_id": tree["id"]}, headers=admin.headers)
    assert r.status_code == 404


async def test_list_filters_by_category_and_paginates(env) -> None:
    eng = env.caller()
    for i in range(3):
        await env.create_tree(eng, title=f"Network {i}", category="network")
    await env.create_tree(eng, title="Printer", category="hardware")
    page = (await env.client.get(TREES, params={"category": "network", "limit": 2}, headers=eng.headers)).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 0)
    assert [t["title"] for t in page["items"]] == ["Network 0", "Network 1"]
    assert "nodes" not in page["items"][0]
    rest = (
        await env.client.get(TREES, params={"category": "network", "limit": 2, "offset": 2}, headers=eng.headers)
    ).json()
    assert [t["title"] for t in rest["items"]] == ["Network 2"]
    assert (await env.client.get(TREES, headers=eng.headers)).json()["total"] == 4
    assert (await env.client.get(TREES, params={"limit": 201}, headers=eng.headers)).status_code == 422
    assert (await env.client.get(TREES, params={"offset": -1}, headers=eng.headers)).status_code == 422


async def test_categories_count_the_accounts_live_trees(env) -> None:
    eng = env.caller()
    await env.create_tree(eng, category="network")
    await env.create_tree(eng, category="network")
    await env.create_tree(eng, category="hardware")
    await env.create_tree(env.caller(), category="elsewhere")  # another account
    r = await env.client.get(f"{TREES}/categories", headers=eng.headers)
    assert r.json() == [{"category": "hardware", "count": 1}, {"category": "network", "count": 2}]


def _tree_mentioning(word: str, where: str) -> dict[str, Any]:
    over: dict[str, Any] = {"title": "General checklist", "description": "Routine checks", "tags": ["misc"]}
    body: dict[str, Any] = {**over}
    if where == "title":
        body["title"] = f"{word.capitalize()} troubleshooting"
    elif where == "description":
        body["description"] = f"When the {word} misbehaves"
    elif where == "tags":
        body["tags"] = ["misc", word]
    return body


async def test_search_ranks_title_above_description_and_tags_above_node_text(env) -> None:
    eng = env.caller()
    ids = {}
    for where in ("nodes", "title", "description"):
        body = _tree_mentioning("firewall", where)
        if where == "nodes":
            tree = env.tree_body(**body)
            _node(tree, "restart")["text"] = "Check the firewall rules, then restart the firewall service."
            ids[where] = (await env.client.post(TREES, json=tree, headers=eng.headers)).json()["id"]
        else:
            ids[where] = (await env.create_tree(eng, **body))["id"]
    await env.create_tree(eng, title="Unrelated printer tree")
    await env.create_tree(env.caller(), title="Firewall elsewhere")  # another account's tree is never found
    r = await env.client.get(f"{TREES}/search", params={"q": "firewalls"}, headers=eng.headers)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 3 and page["query"] == "firewalls"
    assert [hit["id"] for hit in page["items"]] == [ids["title"], ids["description"], ids["nodes"]]
    ranks = [hit["rank"] for hit in page["items"]]
    assert ranks[0] > ranks[1] > ranks[2] > 0


async def test_search_finds_tags_node_text_and_supports_phrases_and_exclusion(env) -> None:
    eng = env.caller()
    mail = env.tree_body(title="Mail", tags=["outlook", "exchange"], category="email")
    _node(mail, "restart")["text"] = "Restart the mail client."
    _node(mail, "done")["text"] = "A restart fixed it."
    tagged = (await env.client.post(TREES, json=mail, headers=eng.headers)).json()
    spooler = await env.create_tree(eng, title="Printer")  # node text mentions the print spooler
    search = f"{TREES}/search"
    hits = (await env.client.get(search, params={"q": "outlook"}, headers=eng.headers)).json()["items"]
    assert [h["id"] for h in hits] == [tagged["id"]]
    hits = (await env.client.get(search, params={"q": '"print spooler"'}, headers=eng.headers)).json()["items"]
    assert [h["id"] for h in hits] == [spooler["id"]]
    hits = (await env.client.get(search, params={"q": "printer -spooler"}, headers=eng.headers)).json()["items"]
    assert [h["id"] for h in hits] == [tagged["id"]]
    hits = (
        await env.client.get(search, params={"q": "outlook", "category": "hardware"}, headers=eng.headers)
    ).json()["items"]
    assert hits == []
    # Only stop words: a valid query that matches nothing, not an error.
    assert (await env.client.get(search, params={"q": "the"}, headers=eng.headers)).json()["items"] == []
    assert (await env.client.get(search, params={"q": ""}, headers=eng.headers)).status_code == 422
    assert (await env.client.get(search, headers=eng.headers)).status_code == 422


async def test_search_uses_the_latest_version(env) -> None:
    eng = env.caller()
    tree = await env.create_tree(eng, title="Old walrus title")
    await env.client.put(f"{TREES}/{tree['id']}", json=env.tree_body(title="New narwhal title"), headers=eng.headers)
    search = f"{TREES}/search"
    assert (await env.client.get(search, params={"q": "walrus"}, headers=eng.headers)).json()["total"] == 0
    hits = (await env.client.get(search, params={"q": "narwhal"}, headers=eng.headers)).json()["items"]
    assert [(h["id"], h["version"]) for h in hits] == [(tree["id"], 2)]


async def test_another_accounts_tree_is_404_on_every_route(env) -> None:
    owner = env.caller("admin")
    tree = await env.create_tree(owner)
    intruder = env.caller("admin")
    url = f"{TREES}/{tree['id']}"
    assert (await env.client.get(url, headers=intruder.headers)).status_code == 404
    assert (await env.client.get(url, params={"version": 1}, headers=intruder.headers)).status_code == 404
    assert (await env.client.put(url, json=env.tree_body(), headers=intruder.headers)).status_code == 404
    assert (await env.client.delete(url, headers=intruder.headers)).status_code == 404
    r = await env.client.post("/api/v1/sessions", json={"tree_id": tree["id"]}, headers=intruder.headers)
    assert r.status_code == 404
    assert (await env.client.get(url, headers=owner.headers)).json()["version"] == 1


async def test_unknown_or_malformed_tree_id(env) -> None:
    eng = env.caller()
    assert (await env.client.get(f"{TREES}/{uuid.uuid4()}", headers=eng.headers)).status_code == 404
    assert (await env.client.get(f"{TREES}/not-a-uuid", headers=eng.headers)).status_code == 422
