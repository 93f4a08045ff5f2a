"""Sample values of the public models' OpenAPI examples: one consistent story (a printer tree, its session)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

ACCOUNT_ID = "5f0c6a52-3b1e-4d8e-9c39-1a2b3c4d5e6f"
USER_ID = "8d7e6f5a-4b3c-4d2e-8f1a-0b9c8d7e6f5a"
OTHER_USER_ID = "6b1d2c3e-7f80-4a91-b2c3-d4e5f6a7b8c9"
TREE_ID = "3c2b1a09-8f7e-4d6c-9b5a-493827160504"
SESSION_ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
STEP_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
HANDOFF_ID = "c0ffee00-1234-4abc-8def-0123456789ab"
AT = "2026-11-29T09:30:00Z"
LATER = "2026-11-29T09:42:00Z"

NODES: list[dict[str, Any]] = [
    {"id": "start", "kind": "question", "text": "Does the printer show a blinking error light?",
     "options": [{"label": "yes", "next_node_id": "restart"}, {"label": "no", "next_node_id": "escalate"}]},
    {"id": "restart", "kind": "solution", "text": "Switch it off for 30 seconds, then on again.", "options": []},
    {"id": "escalate", "kind": "escalation", "text": "Hand over to the hardware team.", "options": []},
]
TREE_CONTENT: dict[str, Any] = {
    "title": "Printer does not print", "description": "Office printers that stopped after an update",
    "category": "hardware", "tags": ["printer", "office"], "root_node_id": "start", "nodes": NODES,
}
TREE_SUMMARY: dict[str, Any] = {
    "id": TREE_ID, "account_id": ACCOUNT_ID, "version": 1, "title": TREE_CONTENT["title"],
    "description": TREE_CONTENT["description"], "category": "hardware", "tags": ["printer", "office"],
    "node_count": 3, "created_by": USER_ID, "created_at": AT, "updated_at": AT,
}
TREE: dict[str, Any] = {**TREE_SUMMARY, "root_node_id": "start", "nodes": NODES}
SESSION: dict[str, Any] = {
    "id": SESSION_ID, "account_id": ACCOUNT_ID, "tree_id": TREE_ID, "tree_version": 1,
    "tree_title": TREE_CONTENT["title"], "title": "Printer on floor 3", "context": {"ticket": "T-1042"},
    "notes": "", "status": "active", "current_node_id": "start", "current_node": NODES[0], "started_by": USER_ID,
    "started_at": AT, "updated_at": AT, "completed_at": None, "completed_by": None, "outcome": None,
    "summary": None, "escalation": None,
}
STEP: dict[str, Any] = {
    "id": STEP_ID, "session_id": SESSION_ID, "account_id": ACCOUNT_ID, "kind": "note",
    "content": "The error light blinks twice, then stays off.", "node_id": "start", "option_label": None,
    "next_node_id": None, "actor_type": "human", "actor_id": USER_ID, "recorded_by": USER_ID, "created_at": LATER,
}
USER: dict[str, Any] = {
    "id": USER_ID, "account_id": ACCOUNT_ID, "email": "ada@example.com", "full_name": "Ada Lovelace",
    "role": "admin", "is_active": True, "created_at": AT, "updated_at": AT,
}
HANDOFF: dict[str, Any] = {
    "id": HANDOFF_ID, "account_id": ACCOUNT_ID, "session_id": SESSION_ID,
    "reason": "The light pattern is not in the tree", "priority": "high", "status": "claimed",
    "last_action": "claimed", "version": 2, "requested_by": USER_ID, "requested_at": AT,
    "claimed_by": OTHER_USER_ID, "claimed_at": LATER, "resolved_by": None, "resolved_at": None,
    "resolution_note": None, "updated_at": LATER,
}


def example(*values: dict[str, Any] | list[Any], **config: Any) -> ConfigDict:
    """A model config whose JSON Schema carries these examples (OpenAPI 3.1 `examples`)."""
    extra = config.pop("json_schema_extra", {})
    return ConfigDict(**config, json_schema_extra={**extra, "examples": list(values)})  # type: ignore[typeddict-item]


def page(item: dict[str, Any]) -> dict[str, Any]:
    return {"items": [item], "total": 1, "limit": 50, "offset": 0}
