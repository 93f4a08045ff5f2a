"""Renders a session export as Markdown that reads well to a person (pure; no I/O)."""

from __future__ import annotations

import json
from datetime import datetime

from rf_contracts.api.sessions import SessionExport

_KIND = {"question": "Question", "action": "Action", "solution": "Solution", "escalation": "Escalation"}
_STEP = {"answer": "Answer", "action": "Action", "note": "Note", "suggestion": "Suggestion"}


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def _inline(text: str) -> str:
    """One line of user text that cannot break the document's structure (tables, headings, emphasis)."""
    flat = " ".join(text.split())
    for ch in "\\`*_[]|<>#":
        flat = flat.replace(ch, "\\" + ch)
    return flat


def _code(text: str) -> str:
    return " ".join(text.replace("`", "'").split())


def _quote(text: str) -> list[str]:
    """User text kept as written (line breaks included) inside a block quote."""
    return [f"> {line}".rstrip() for line in text.strip().splitlines()] or [">"]


def render_markdown(doc: SessionExport) -> str:
    s = doc.session
    lines = [f"# {_inline(s.title)}", ""]
    status = "Completed" if s.status == "completed" else "In progress"
    if s.outcome:
        status += f" — {s.outcome}"
    lines += [
        f"- **Tree:** {_inline(doc.tree.title)} (version {doc.tree.version}, category {_inline(doc.tree.category)})",
        f"- **Status:** {status}",
        f"- **Started:** {_when(s.started_at)} by `{s.started_by}`",
    ]
    if s.completed_at:
        lines.append(f"- **Completed:** {_when(s.completed_at)} by `{s.completed_by}`")
    if s.escalation:
        e = s.escalation
        who = f", claimed by `{e.claimed_by}` at {_when(e.claimed_at)}" if e.claimed_by else ""
        lines.append(f"- **Escalation:** handoff `{e.handoff_id}` is {e.status}{who}")
    lines += [f"- **Session id:** `{s.id}`", ""]

    if s.context:
        lines += ["## Context", ""]
        if isinstance(s.context, str):
            lines += [*_quote(s.context), ""]
        else:
            lines += ["```json", json.dumps(s.context, indent=2, ensure_ascii=False), "```", ""]

    lines += ["## Path through the tree", ""]
    for i, entry in enumerate(doc.path, 1):
        item = f"{i}. **{_KIND.get(entry.kind, entry.kind)}:** {_inline(entry.text)}"
        if entry.option_label is not None:
            item += f" → **{_inline(entry.option_label)}** ({_when(entry.answered_at)})"
        elif s.status == "active":
            item += " ← current step"
        lines.append(item)
    lines.append("")

    lines += ["## Journal", ""]
    if not doc.steps:
        lines += ["No steps were recorded.", ""]
    for i, step in enumerate(doc.steps, 1):
        by = "FlowPilot assistant" if step.actor_type == "ai" else f"`{step.actor_id}`"
        where = f" at node `{_code(step.node_id)}`" if step.node_id else ""
        lines += [f"{i}. **{_STEP[step.kind]}** by {by}{where}, {_when(step.created_at)}", ""]
        lines += [f"   {line}" if line else "" for line in _quote(step.content)] + [""]

    if s.notes.strip():
        lines += ["## Notes", "", *_quote(s.notes), ""]

    lines += ["## Outcome", ""]
    if doc.outcome:
        lines.append(f"**{doc.outcome.capitalize()}** on {_when(doc.completed_at)}.")
        if doc.summary:
            lines += ["", *_quote(doc.summary)]
    else:
        lines.append("The session is still in progress.")
    lines += ["", f"_Exported {_when(doc.exported_at)}._", ""]
    return "\n".join(lines)
