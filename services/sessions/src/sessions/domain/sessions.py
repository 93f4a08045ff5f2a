"""Troubleshooting sessions: their state, how an answer moves one on, and the path an export shows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from rf_contracts.api.sessions import PathEntry, SessionCreate, StepRead
from rf_contracts.api.trees import TreeNode, TreeRead
from sessions.domain.errors import AnswerNotAtCurrentNode, SessionAlreadyCompleted, UnknownOption
from sessions.domain.trees import node_index


@dataclass(frozen=True)
class SessionState:
    """A session as stored: the tree version it runs on, where it is, and how it ended."""

    id: UUID
    account_id: UUID
    tree_id: UUID
    tree_version: int
    title: str
    context: Any
    notes: str
    status: str
    current_node_id: str
    started_by: UUID
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    completed_by: UUID | None = None
    outcome: str | None = None
    summary: str | None = None

    @classmethod
    def start(cls, tree: TreeRead, request: SessionCreate, *, started_by: UUID, at: datetime) -> SessionState:
        """A new session on this tree version: active at its root, titled after the tree unless given a title."""
        return cls(
            id=uuid.uuid4(),
            account_id=tree.account_id,
            tree_id=tree.id,
            tree_version=tree.version,
            title=request.title or tree.title,
            context=request.context,
            notes="",
            status="active",
            current_node_id=tree.root_node_id,
            started_by=started_by,
            started_at=at,
            updated_at=at,
        )

    def ensure_active(self) -> None:
        ensure_active(self.status)


@dataclass(frozen=True)
class SessionFilter:
    """Which of an account's sessions a list holds: those started by one user, in one status, on one tree (each
    only when given)."""

    started_by: UUID | None = None
    status: str | None = None
    tree_id: UUID | None = None


def ensure_active(status: str) -> None:
    """A completed session is history: every write on it is a 409."""
    if status != "active":
        raise SessionAlreadyCompleted()


def next_write(previous: datetime, now: datetime) -> datetime:
    """The time of a write to a locked session: strictly after the last one, so its ETag always changes."""
    return max(now, previous + timedelta(microseconds=1))


def follow_option(nodes: dict[str, TreeNode], current_node_id: str, node_id: str, option_label: str) -> TreeNode:
    """The node that answering `option_label` at `node_id` leads to; 422 unless it is the current node's option."""
    if node_id != current_node_id:
        raise AnswerNotAtCurrentNode(
            f"the session is at node {current_node_id!r}, not {node_id!r}: answer the current node"
        )
    node = nodes[current_node_id]
    for option in node.options:
        if option.label == option_label:
            return nodes[option.next_node_id]
    choices = ", ".join(repr(o.label) for o in node.options) or "none (the node ends the tree)"
    raise UnknownOption(f"node {node_id!r} has no option {option_label!r}; its options: {choices}")


def answer_text(node: TreeNode, option_label: str) -> str:
    """The journal line of an answer: the question and the option chosen."""
    return f"{node.text} → {option_label}"


def export_path(tree: TreeRead, steps: Sequence[StepRead]) -> list[PathEntry]:
    """The nodes the session went through, from the root, each with the option chosen there, ending where it is.

    Rebuilt from the answer steps (those with a next node) in journal order, so it is the path actually taken
    on the session's own tree version.
    """
    nodes = node_index(tree.nodes)
    path: list[PathEntry] = []
    at = tree.root_node_id
    for step in steps:
        if step.next_node_id is None or step.node_id is None:
            continue
        node = nodes[step.node_id]
        path.append(
            PathEntry(
                node_id=node.id,
                kind=node.kind,
                text=node.text,
                option_label=step.option_label,
                answered_at=step.created_at,
                answered_by=step.actor_id,
            )
        )
        at = step.next_node_id
    last = nodes[at]
    path.append(
        PathEntry(
            node_id=last.id, kind=last.kind, text=last.text, option_label=None, answered_at=None, answered_by=None
        )
    )
    return path
