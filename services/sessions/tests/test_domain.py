"""Unit tests of the pure rules: tree validation, answering, escalation views and the Markdown export."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest

from rf_contracts import HandoffClaimed, HandoffReleased, HandoffRequested, HandoffResolved
from rf_contracts.api.sessions import ExportedTree, PathEntry, SessionExport, SessionRead, StepRead
from rf_contracts.api.trees import TreeNode, TreeRead
from rfkit.errors import Conflict, Invalid
from rfkit.web import error_status
from sessions.domain import (
    InvalidTree,
    apply_handoff_event,
    current_escalation,
    ensure_active,
    export_path,
    follow_option,
    node_index,
    tree_violations,
    validate_tree,
)
from sessions.export import render_markdown


def q(nid: str, *targets: str, kind: str = "question") -> TreeNode:
    return TreeNode(id=nid, kind=kind, text=f"node {nid}", options=[{"label": t, "next_node_id": t} for t in targets])


def end(nid: str, kind: str = "solution") -> TreeNode:
    return TreeNode(id=nid, kind=kind, text=f"end {nid}")


def rules(root: str, nodes: list[TreeNode]) -> set[tuple[str, str]]:
    return {(v.rule, v.node_id) for v in tree_violations(root, nodes)}


def test_valid_tree_has_no_violations() -> None:
    nodes = [q("a", "b", "c"), q("b", "d", kind="action"), end("c", "escalation"), end("d")]
    assert tree_violations("a", nodes) == []
    validate_tree("a", nodes)


def test_missing_root_is_named() -> None:
    assert ("root_missing", "nope") in rules("nope", [end("a")])


def test_option_to_a_missing_node_names_the_node_with_the_option() -> None:
    assert rules("a", [q("a", "b", "ghost"), end("b")]) == {("unknown_next_node", "a")}


def test_unreachable_node_is_named() -> None:
    assert rules("a", [q("a", "b"), end("b"), end("island")]) == {("unreachable_from_root", "island")}


def test_node_that_cannot_reach_a_terminal_is_named() -> None:
    # a -> b <-> c loop with no way out; a also leads to the solution d.
    nodes = [q("a", "b", "d"), q("b", "c"), q("c", "b"), end("d")]
    assert rules("a", nodes) == {("no_path_to_terminal", "b"), ("no_path_to_terminal", "c")}


def test_action_without_options_is_a_dead_end() -> None:
    assert rules("a", [q("a", "b", "c"), TreeNode(id="b", kind="action", text="x"), end("c")]) == {
        ("no_path_to_terminal", "b")
    }


def test_duplicate_node_ids_are_named() -> None:
    assert ("duplicate_node_id", "b") in rules("a", [q("a", "b"), end("b"), end("b")])


def test_terminal_with_options_is_named() -> None:
    nodes = [q("a", "b"), TreeNode(id="b", kind="solution", text="x", options=[{"label": "c", "next_node_id": "c"}]),
             end("c")]
    assert rules("a", nodes) == {("terminal_has_options", "b")}


def test_question_without_options_is_named() -> None:
    assert ("question_without_options", "a") in rules("a", [TreeNode(id="a", kind="question", text="?")])


def test_duplicate_option_labels_are_named() -> None:
    node = TreeNode(id="a", kind="question", text="?", options=[{"label": "x", "next_node_id": "b"}] * 2)
    assert rules("a", [node, end("b")]) == {("duplicate_option_label", "a")}


def test_invalid_tree_error_is_422_with_every_violation() -> None:
    with pytest.raises(InvalidTree) as caught:
        validate_tree("a", [q("a", "ghost"), end("island")])
    assert error_status(caught.value) == 422
    found = {(d["rule"], d["node_id"]) for d in caught.value.detail}
    assert {("unknown_next_node", "a"), ("unreachable_from_root", "island"), ("no_path_to_terminal", "a")} <= found


def test_answer_follows_an_option_of_the_current_node_only() -> None:
    nodes = node_index([q("a", "b"), end("b")])
    assert follow_option(nodes, "a", "a", "b").id == "b"
    with pytest.raises(Invalid) as unknown:
        follow_option(nodes, "a", "a", "missing")
    assert unknown.value.code == "unknown_option"
    with pytest.raises(Invalid) as elsewhere:
        follow_option(nodes, "a", "b", "b")  # not the current node
    assert elsewhere.value.code == "answer_not_at_current_node"
    with pytest.raises(Invalid) as terminal:
        follow_option(nodes, "b", "b", "anything")  # terminal: no options
    assert terminal.value.code == "unknown_option"


def test_completed_session_refuses_writes() -> None:
    ensure_active("active")
    with pytest.raises(Conflict) as caught:
        ensure_active("completed")
    assert (caught.value.code, error_status(caught.value)) == ("session_completed", 409)


def _version(root: str, nodes: list[TreeNode]) -> TreeRead:
    return TreeRead(id=uuid.uuid4(), account_id=uuid.uuid4(), version=3, title="t", description="", category="c",
                    tags=[], node_count=len(nodes), root_node_id=root, nodes=nodes, created_by=uuid.uuid4(),
                    created_at=datetime(2025, 1, 1, tzinfo=UTC), updated_at=datetime(2025, 1, 1, tzinfo=UTC))


def _step(at: datetime, *, node_id: str | None = None, option: str | None = None, to: str | None = None,
          kind: str = "answer", actor: uuid.UUID | None = None) -> StepRead:
    return StepRead(id=uuid.uuid4(), session_id=uuid.uuid4(), account_id=uuid.uuid4(), kind=kind, content="x",
                    node_id=node_id, option_label=option, next_node_id=to, actor_type="human", actor_id=actor,
                    recorded_by=actor or uuid.uuid4(), created_at=at)


def test_export_path_follows_the_answers_from_the_root_to_where_the_session_is() -> None:
    tree = _version("a", [q("a", "b", "c"), q("b", "d", kind="action"), end("c"), end("d")])
    t0, who = datetime(2025, 1, 1, tzinfo=UTC), uuid.uuid4()
    steps = [
        _step(t0, node_id="a", option="b", to="b", actor=who),
        _step(t0 + timedelta(seconds=1), node_id="b", kind="note"),  # pinned to a node, but not an answer
        _step(t0 + timedelta(seconds=2), node_id="b", option="d", to="d", actor=who),
    ]
    path = export_path(tree, steps)
    assert [(p.node_id, p.option_label, p.answered_at) for p in path] == [
        ("a", "b", t0), ("b", "d", t0 + timedelta(seconds=2)), ("d", None, None)
    ]
    assert path[0].answered_by == who and path[0].text == "node a" and path[-1].kind == "solution"


def test_export_path_of_a_fresh_session_is_its_root() -> None:
    tree = _version("a", [q("a", "b"), end("b")])
    assert [(p.node_id, p.option_label) for p in export_path(tree, [])] == [("a", None)]


T0 = datetime(2025, 1, 1, tzinfo=UTC)
ACC, SES, HID, ALICE, BOB = (uuid.uuid4() for _ in range(5))


def _common(version: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(minutes=version), "account_id": ACC,
            "session_id": SES, "handoff_id": HID, "version": version}


def _history() -> list[Any]:
    return [
        HandoffRequested(**_common(1), requested_by=ALICE, requested_at=T0, priority="high", reason="stuck"),
        HandoffClaimed(**_common(2), claimed_by=ALICE, claimed_at=T0 + timedelta(minutes=2)),
        HandoffReleased(**_common(3), released_by=ALICE, released_at=T0 + timedelta(minutes=3)),
        HandoffClaimed(**_common(4), claimed_by=BOB, claimed_at=T0 + timedelta(minutes=4)),
    ]


def _fold(events: list[Any]) -> Any:
    view = None
    for event in events:
        view = apply_handoff_event(view, event)
    return view


@pytest.mark.parametrize("order", list(permutations(range(4))))
def test_escalation_view_does_not_depend_on_event_order(order: tuple[int, ...]) -> None:
    history = _history()
    view = _fold([history[i] for i in order])
    assert (view.status, view.version) == ("claimed", 4)
    assert view.current_claimer == (BOB, T0 + timedelta(minutes=4))


def test_release_after_claim_clears_the_claimer_and_resolve_keeps_it() -> None:
    history = _history()
    released = _fold(history[:3])
    assert (released.status, released.current_claimer) == ("released", (None, None))
    resolved = _fold([*history, HandoffResolved(**_common(5), resolved_by=BOB, resolved_at=T0)])
    assert (resolved.status, resolved.current_claimer[0]) == ("resolved", BOB)


def test_stale_event_after_newer_changes_nothing() -> None:
    history = _history()
    assert _fold([*history, history[1], history[2]]) == _fold(history)


def test_open_handoff_is_shown_before_an_older_resolved_one() -> None:
    old = _fold([HandoffResolved(**{**_common(3), "handoff_id": uuid.uuid4()}, resolved_by=BOB, resolved_at=T0)])
    new = _fold([HandoffRequested(**{**_common(1), "occurred_at": T0 + timedelta(hours=1)}, requested_by=ALICE,
                                  requested_at=T0, priority="low", reason="again")])
    assert current_escalation([old, new]) is new
    assert current_escalation([old]) is old
    assert current_escalation([]) is None


def test_markdown_export_reads_as_a_document() -> None:
    node = TreeNode(id="a", kind="question", text="Is it *on*?", options=[{"label": "Yes", "next_node_id": "b"}])
    session = SessionRead(
        id=SES, account_id=ACC, tree_id=HID, tree_version=2, tree_title="Printer", title="Ticket | 42",
        context={"ticket": "T-42"}, notes="call back\nafter lunch", status="completed", current_node_id="b",
        current_node=TreeNode(id="b", kind="solution", text="Done"), started_by=ALICE, started_at=T0,
        updated_at=T0, completed_at=T0, completed_by=ALICE, outcome="resolved", summary="fixed", escalation=None,
    )
    step = StepRead(id=uuid.uuid4(), session_id=SES, account_id=ACC, kind="suggestion", content="# try\nrestart",
                    node_id="a", option_label=None, next_node_id=None, actor_type="ai", actor_id=None,
                    recorded_by=ALICE, created_at=T0)
    doc = SessionExport(
        exported_at=T0, session=session, tree=ExportedTree(id=HID, version=2, title="Printer", category="hw"),
        path=[PathEntry(node_id="a", kind="question", text=node.text, option_label="Yes", answered_at=T0,
                        answered_by=ALICE),
              PathEntry(node_id="b", kind="solution", text="Done", option_label=None, answered_at=None,
                        answered_by=None)],
        steps=[step], outcome="resolved", summary="fixed", completed_at=T0,
    )
    md = render_markdown(doc)
    assert md.startswith("# Ticket \\| 42\n")
    assert "version 2" in md
    assert "1. **Question:** Is it \\*on\\*? → **Yes**" in md
    assert "2. **Solution:** Done" in md
    assert "**Suggestion** by FlowPilot assistant" in md
    assert "   > # try" in md  # user text quoted, so it cannot become a heading
    assert "**Resolved**" in md and "> fixed" in md
    assert '"ticket": "T-42"' in md
