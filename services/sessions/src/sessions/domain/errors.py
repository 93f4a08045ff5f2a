"""The refusals of the sessions service, each with a stable snake_case code (rfkit.web maps them to HTTP)."""

from __future__ import annotations

from collections.abc import Sequence

from rf_contracts.api.trees import TreeViolation
from rfkit.errors import Conflict, Forbidden, Invalid, NotFound


class TreeNotFound(NotFound, code="tree_not_found", detail="tree not found"): ...


class TreeVersionNotFound(NotFound, code="tree_version_not_found"):
    """No such version of a live tree of the account (a missing tree is not told apart from a missing version)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"tree version {version} not found")


class SessionNotFound(NotFound, code="session_not_found", detail="session not found"): ...


class SessionAlreadyCompleted(
    Conflict, code="session_completed", detail="the session is completed; it cannot be changed"
):
    """A completed session is history: every write on it is refused."""


class AnswerNotAtCurrentNode(Invalid, code="answer_not_at_current_node"): ...


class UnknownOption(Invalid, code="unknown_option"): ...


class NodeNotInTree(Invalid, code="node_not_in_tree"): ...


class AccountScopeForbidden(
    Forbidden, code="account_scope_forbidden", detail="scope=account requires role engineer or higher"
):
    ...


class InvalidTree(Invalid, code="invalid_tree"):
    """A tree that is not a valid graph: every violation, with its node and rule, goes under `errors`."""

    def __init__(self, violations: Sequence[TreeViolation]) -> None:
        super().__init__([v.model_dump() for v in violations])
        self.violations = list(violations)
