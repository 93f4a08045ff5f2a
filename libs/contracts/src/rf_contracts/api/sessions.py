"""Public REST models of troubleshooting sessions, their steps and exports (owned by the sessions service)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from rf_contracts.api import examples as ex
from rf_contracts.api.examples import example
from rf_contracts.api.trees import Label, NodeId, Storable, Title, TreeNode, storable

SessionStatus = Literal["active", "completed"]
Outcome = Literal["resolved", "unresolved"]
StepKind = Literal["answer", "action", "note", "suggestion"]
ActorType = Literal["human", "ai"]
EscalationStatus = Literal["open", "claimed", "released", "resolved"]
Notes = Annotated[str, StringConstraints(max_length=20_000), Storable]
Content = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000), Storable]

MAX_CONTEXT_BYTES = 16_384
# Levels of objects and arrays a context may have. Well below what pydantic can serialize (255), so that a
# stored context can always be answered back.
MAX_CONTEXT_DEPTH = 16


def _check_json(value: Any) -> None:
    """Every string (keys included) of a JSON value must be storable in PostgreSQL, and its nesting bounded."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            storable(item)
        elif isinstance(item, dict | list):
            if depth > MAX_CONTEXT_DEPTH:
                raise ValueError(f"context is nested deeper than {MAX_CONTEXT_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    storable(str(key))
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def readable_context(value: Any) -> Any:
    """A stored context as it can be answered: one nested too deep to serialize (stored before the limit
    existed) is answered as its JSON text, so the session and every list holding it stay readable."""
    if isinstance(value, dict):
        try:
            _check_json(value)
        except ValueError:
            return json.dumps(value, ensure_ascii=False)
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionCreate(_Input):
    """POST /sessions: start on the latest version of a tree, at its root."""

    model_config = example({"tree_id": ex.TREE_ID, "title": "Printer on floor 3", "context": {"ticket": "T-1042"}})

    tree_id: UUID
    title: Title | None = None
    # Free text ("customer cannot print since the update") or an object of facts ({"ticket": "T-1"}).
    context: Annotated[str, StringConstraints(max_length=MAX_CONTEXT_BYTES), Storable] | dict[str, Any] | None = None

    @field_validator("context")
    @classmethod
    def _context_storable(cls, value: Any) -> Any:
        if isinstance(value, dict):
            _check_json(value)
            try:
                text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            except ValueError as exc:  # NaN and Infinity are not JSON
                raise ValueError(f"context is not valid JSON: {exc}") from exc
            if len(text.encode()) > MAX_CONTEXT_BYTES:
                raise ValueError(f"context is larger than {MAX_CONTEXT_BYTES} bytes")
        return value


class Answer(_Input):
    """Follow one option of the current node."""

    model_config = example({"node_id": "start", "option_label": "yes"})

    node_id: NodeId
    option_label: Label


class SessionUpdate(_Input):
    """PUT /sessions/{id}: any of a new title, new notes, or an answer that moves the session on."""

    # The schema says what the validator below does: at least one of the three, and not null.
    model_config = example(
        {"answer": {"node_id": "start", "option_label": "yes"}}, {"title": "Printer on floor 3 (Canon)"},
        extra="forbid", json_schema_extra={"anyOf": [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
            for name in ("title", "notes", "answer")
        ]},
    )

    title: Title | None = None
    notes: Notes | None = None
    answer: Answer | None = None

    @model_validator(mode="after")
    def _something(self) -> SessionUpdate:
        if self.title is None and self.notes is None and self.answer is None:
            raise ValueError("give at least one of title, notes, answer")
        return self


class Escalation(BaseModel):
    """The session's handoff as the handoffs service last reported it (the newest `version` wins)."""

    model_config = example(
        {
            "handoff_id": ex.HANDOFF_ID,
            "status": "claimed",
            "claimed_by": ex.OTHER_USER_ID,
            "claimed_at": ex.LATER,
            "version": 2,
            "updated_at": ex.LATER,
        }
    )

    handoff_id: UUID
    status: EscalationStatus
    claimed_by: UUID | None
    claimed_at: AwareDatetime | None
    version: int
    updated_at: AwareDatetime


class SessionRead(BaseModel):

    model_config = example(ex.SESSION)

    id: UUID
    account_id: UUID
    tree_id: UUID
    tree_version: int
    tree_title: str
    title: str
    context: str | dict[str, Any] | None
    notes: str
    status: SessionStatus
    current_node_id: str
    current_node: TreeNode
    started_by: UUID
    started_at: AwareDatetime
    updated_at: AwareDatetime
    completed_at: AwareDatetime | None
    completed_by: UUID | None
    outcome: Outcome | None
    summary: str | None
    escalation: Escalation | None


class SessionPage(BaseModel):

    model_config = example(ex.page(ex.SESSION))

    items: list[SessionRead]
    total: int
    limit: int
    offset: int


class StepCreate(_Input):
    """POST /sessions/{id}/steps: a journal entry by a person or by the FlowPilot assistant."""

    model_config = example(
        {
            "kind": "note",
            "content": "The error light blinks twice, then stays off.",
            "node_id": "start",
            "actor_type": "human",
        }
    )

    kind: StepKind
    content: Content
    node_id: NodeId | None = None
    actor_type: ActorType = "human"


class StepRead(BaseModel):
    """A journal entry. `actor_id` is the person who acted (null for the assistant); `recorded_by` who wrote it."""

    model_config = example(ex.STEP)

    id: UUID
    session_id: UUID
    account_id: UUID
    kind: StepKind
    content: str
    node_id: str | None
    # Set on the steps recorded by answering (PUT /sessions/{id} with `answer`): where the session went.
    option_label: str | None
    next_node_id: str | None
    actor_type: ActorType
    actor_id: UUID | None
    recorded_by: UUID
    created_at: AwareDatetime


class StepPage(BaseModel):

    model_config = example(ex.page(ex.STEP))

    items: list[StepRead]
    total: int
    limit: int
    offset: int


class SessionComplete(_Input):

    model_config = example({"outcome": "resolved", "summary": "Restarting cleared the error."})

    outcome: Outcome
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000), Storable] | None = None


class PathEntry(BaseModel):
    """One node the session went through, and the option chosen there (null where it is now or ended)."""

    model_config = example(
        {
            "node_id": "start",
            "kind": "question",
            "text": ex.NODES[0]["text"],
            "option_label": "yes",
            "answered_at": ex.LATER,
            "answered_by": ex.USER_ID,
        }
    )

    node_id: str
    kind: str
    text: str
    option_label: str | None
    answered_at: AwareDatetime | None
    answered_by: UUID | None


class ExportedTree(BaseModel):

    model_config = example({"id": ex.TREE_ID, "version": 1, "title": "Printer does not print", "category": "hardware"})

    id: UUID
    version: int
    title: str
    category: str


class SessionExport(BaseModel):
    """The whole session as one document (POST /sessions/{id}/export?format=json)."""

    model_config = example(
        {
            "format": "resolutionflow.session-export",
            "format_version": 1,
            "exported_at": ex.LATER,
            "session": ex.SESSION,
            "tree": {"id": ex.TREE_ID, "version": 1, "title": "Printer does not print", "category": "hardware"},
            "path": [
                {
                    "node_id": "start",
                    "kind": "question",
                    "text": ex.NODES[0]["text"],
                    "option_label": None,
                    "answered_at": None,
                    "answered_by": None,
                }
            ],
            "steps": [ex.STEP],
            "outcome": None,
            "summary": None,
            "completed_at": None,
        }
    )

    format: Literal["resolutionflow.session-export"] = "resolutionflow.session-export"
    format_version: Literal[1] = 1
    exported_at: AwareDatetime
    session: SessionRead
    tree: ExportedTree
    path: list[PathEntry]
    steps: list[StepRead] = Field(description="every step, oldest first")
    outcome: Outcome | None
    summary: str | None
    completed_at: AwareDatetime | None


ExportFormat = Literal["markdown", "json"]
