"""Sample data the composed system's scenario and the tests share: a small troubleshooting tree with a question, a
solution and an escalation."""

from __future__ import annotations

from typing import Any


def printer_tree(title: str = "Printer offline") -> dict[str, Any]:
    """A tree to POST to /trees: q1 asks, "yes" leads to solution s1, "no" to escalation e1 (a new dict each call)."""
    return {
        "title": title, "description": "When the office printer shows offline", "category": "hardware",
        "tags": ["printer"], "root_node_id": "q1",
        "nodes": [
            {"id": "q1", "kind": "question", "text": "Is it plugged in?",
             "options": [{"label": "yes", "next_node_id": "s1"}, {"label": "no", "next_node_id": "e1"}]},
            {"id": "s1", "kind": "solution", "text": "Restart the spooler"},
            {"id": "e1", "kind": "escalation", "text": "Ask facilities"},
        ],
    }
