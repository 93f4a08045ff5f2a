"""The rules of decision trees, sessions and escalation views; pure Python, no I/O."""

from sessions.domain.errors import (
    AccountScopeForbidden,
    AnswerNotAtCurrentNode,
    InvalidTree,
    NodeNotInTree,
    SessionAlreadyCompleted,
    SessionNotFound,
    TreeNotFound,
    TreeVersionNotFound,
    UnknownOption,
)
from sessions.domain.escalations import HandoffView, apply_handoff_event, current_escalation
from sessions.domain.sessions import (
    SessionFilter,
    SessionState,
    answer_text,
    ensure_active,
    export_path,
    follow_option,
    next_write,
)
from sessions.domain.trees import TERMINAL_KINDS, node_index, tree_violations, validate_tree

__all__ = [
    "TERMINAL_KINDS",
    "AccountScopeForbidden",
    "AnswerNotAtCurrentNode",
    "HandoffView",
    "InvalidTree",
    "NodeNotInTree",
    "SessionAlreadyCompleted",
    "SessionFilter",
    "SessionNotFound",
    "SessionState",
    "TreeNotFound",
    "TreeVersionNotFound",
    "UnknownOption",
    "answer_text",
    "apply_handoff_event",
    "current_escalation",
    "ensure_active",
    "export_path",
    "follow_option",
    "next_write",
    "node_index",
    "tree_violations",
    "validate_tree",
]
