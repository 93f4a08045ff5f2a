"""Decision trees: what makes a tree a valid graph (a version is kept and answered as the API's TreeRead)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rf_contracts.api.trees import TreeNode, TreeViolation
from sessions.domain.errors import InvalidTree

TERMINAL_KINDS = frozenset({"solution", "escalation"})


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
