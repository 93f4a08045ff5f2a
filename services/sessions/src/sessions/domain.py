"""The rules of decision trees, sessions and escalation views; pure Python, no I/O."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from rf_contracts import HandoffClaimed, HandoffEvent, HandoffReleased, HandoffRequested, HandoffResolved
from rf_contracts.api.trees import TreeNode, TreeViolation
from rfkit.errors import Conflict, Invalid

TERMINAL_KINDS = frozenset({"solution", "escalation"})


class InvalidTree(Invalid):
    """A tree that is not a valid graph; the detail lists every violation with its node and rule."""

    def __init__(self, violations: Sequence[TreeViolation]) -> None:
        super().__init__([v.model_dump() for v in violations])
        self.violations = list(violations)


def tree_violations(root_node_id: str, nodes: Sequence[TreeNode]) -> list[TreeViolation]:
    """Every way the tree breaks the rules of docs/contract.md#what-makes-a-tree-valid (empty when it is valid)."""
    found: list[TreeViolation] = []

    def violation(rule: str, node_id: str, message: str) -> None:
        found.append(TreeViolation(rule=rule, node_id=node_id, message=message))  # type: ignore[arg-type]

    by_id: dict[str, TreeNode] = {}
    for node in nodes:
        if node.id in by_id:
            violation("duplicate_node_id", node.id, f"node id {node.id!r} is used by more than one node")
        else:
            by_id[node.id] = node
    if root_node_id not in by_id:
        violation("root_missing", root_node_id, f"root node {root_node_id!r} is not among the nodes")

    for node in by_id.values():
        labels: set[str] = set()
        for option in node.options:
            if option.next_node_id not in by_id:
                violation(
                    "unknown_next_node",
                    node.id,
                    f"option {option.label!r} of node {node.id!r} leads to {option.next_node_id!r}, "
                    "which is not a node of this tree",
                )
            if option.label in labels:
                # Answers name the option by its label, so two equal labels could not be told apart.
                violation("duplicate_option_label", node.id, f"node {node.id!r} has two options {option.label!r}")
            labels.add(option.label)
        if node.kind in TERMINAL_KINDS and node.options:
            violation("terminal_has_options", node.id, f"{node.kind} node {node.id!r} ends the tree: no options")
        if node.kind == "question" and not node.options:
            violation("question_without_options", node.id, f"question node {node.id!r} has no options to answer")

    edges = {nid: [o.next_node_id for o in n.options if o.next_node_id in by_id] for nid, n in by_id.items()}
    if root_node_id in by_id:
        reachable = _closure([root_node_id], edges)
        for nid in by_id:
            if nid not in reachable:
                violation("unreachable_from_root", nid, f"node {nid!r} cannot be reached from the root")

    reverse: dict[str, list[str]] = {nid: [] for nid in by_id}
    for nid, targets in edges.items():
        for target in targets:
            reverse[target].append(nid)
    can_end = _closure([nid for nid, n in by_id.items() if n.kind in TERMINAL_KINDS], reverse)
    for nid in by_id:
        if nid not in can_end:
            violation(
                "no_path_to_terminal", nid, f"from node {nid!r} no path leads to a solution or escalation node"
            )
    return found


def validate_tree(root_node_id: str, nodes: Sequence[TreeNode]) -> None:
    """Raise InvalidTree (422) unless the tree is a valid graph."""
    violations = tree_violations(root_node_id, nodes)
    if violations:
        raise InvalidTree(violations)


def _closure(start: Sequence[str], edges: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    queue = deque(start)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def node_index(nodes: Sequence[TreeNode]) -> dict[str, TreeNode]:
    return {n.id: n for n in nodes}


def follow_option(nodes: dict[str, TreeNode], current_node_id: str, node_id: str, option_label: str) -> TreeNode:
    """The node that answering `option_label` at `node_id` leads to; 422 unless it is the current node's option."""
    if node_id != current_node_id:
        raise Invalid(f"the session is at node {current_node_id!r}, not {node_id!r}: answer the current node")
    node = nodes[current_node_id]
    for option in node.options:
        if option.label == option_label:
            return nodes[option.next_node_id]
    choices = ", ".join(repr(o.label) for o in node.options) or "none (the node ends the tree)"
    raise Invalid(f"node {node_id!r} has no option {option_label!r}; its options: {choices}")


def ensure_active(status: str) -> None:
    """A completed session is history: every write on it is a 409."""
    if status != "active":
        raise Conflict("the session is completed; it cannot be changed")


@dataclass(frozen=True)
class HandoffView:
    """What the sessions service knows of one handoff, built only from its events, whatever their order.

    `status` comes from the event with the highest version. The claimer is the one of the claim with the
    highest version unless a release has a higher version still (the rule analytics uses for claimed_at).
    """

    handoff_id: UUID
    account_id: UUID
    session_id: UUID
    status: str
    version: int
    status_at: datetime
    claim_version: int | None = None
    claimed_by: UUID | None = None
    claimed_at: datetime | None = None
    release_version: int | None = None

    @property
    def current_claimer(self) -> tuple[UUID | None, datetime | None]:
        if self.claim_version is None or (self.release_version or 0) > self.claim_version:
            return None, None
        return self.claimed_by, self.claimed_at


_STATUS = {
    HandoffRequested: "open",
    HandoffClaimed: "claimed",
    HandoffReleased: "released",
    HandoffResolved: "resolved",
}


def apply_handoff_event(view: HandoffView | None, event: HandoffEvent) -> HandoffView:
    """The view after `event`; an event older than what the view already holds changes only what it alone knows."""
    status = _STATUS[type(event)]
    if view is None:
        view = HandoffView(
            handoff_id=event.handoff_id,
            account_id=event.account_id,
            session_id=event.session_id,
            status=status,
            version=event.version,
            status_at=event.occurred_at,
        )
    elif event.version > view.version:
        view = replace(view, status=status, version=event.version, status_at=event.occurred_at)
    if isinstance(event, HandoffClaimed) and event.version > (view.claim_version or 0):
        view = replace(view, claim_version=event.version, claimed_by=event.claimed_by, claimed_at=event.claimed_at)
    if isinstance(event, HandoffReleased) and event.version > (view.release_version or 0):
        view = replace(view, release_version=event.version)
    return view


def current_escalation(views: Sequence[HandoffView]) -> HandoffView | None:
    """The handoff to show on a session: one still in play (not resolved) first, then the most recent change."""
    if not views:
        return None
    return max(views, key=lambda v: (v.status != "resolved", v.status_at, v.version, str(v.handoff_id)))
