"""Public REST models of decision trees (owned by the sessions service, shown by the gateway)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from rf_contracts.api import examples as ex
from rf_contracts.api.examples import example
from rf_contracts.api.text import Storable, storable

__all__ = ["Storable", "storable"]  # re-exported: the session models import them from here
NodeKind = Literal["question", "action", "solution", "escalation"]
# Node ids are chosen by the tree's author ("start", "q1", ...); they only need to be unique in the tree.
NodeId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Storable]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Storable]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), Storable]

MAX_NODES = 500
MAX_OPTIONS = 50
# All the searchable text of a tree (title, description, tags, node texts, option labels), in UTF-8 bytes.
# PostgreSQL refuses a tsvector over 1 MB, and an index entry can take up to about three times the bytes of
# its text (one-letter distinct words: the lexeme, a position and a count each), so 256 KiB always fits.
MAX_TREE_TEXT_BYTES = 256 * 1024


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TreeOption(_Input):
    """One way out of a node: the label a person picks and the node it leads to."""

    model_config = example({"label": "yes", "next_node_id": "restart"})

    label: Label
    next_node_id: NodeId


class TreeNode(_Input):
    """A step of the tree: a question or action leads on through options; solution and escalation end it."""

    model_config = example(ex.NODES[0])

    id: NodeId
    kind: NodeKind
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000), Storable]
    options: list[TreeOption] = Field(default_factory=list, max_length=MAX_OPTIONS)


class TreeCreate(_Input):
    """A whole tree; validated as a graph (root exists, options lead to nodes, all reachable, all can end)."""

    model_config = example(ex.TREE_CONTENT)

    title: Title
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000), Storable] = ""
    category: Category = "general"
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    root_node_id: NodeId
    nodes: list[TreeNode] = Field(min_length=1, max_length=MAX_NODES)

    @model_validator(mode="after")
    def _searchable_size(self) -> TreeCreate:
        texts = [self.title, self.description, *self.tags]
        for node in self.nodes:
            texts += [node.text, *(option.label for option in node.options)]
        size = sum(len(text.encode()) for text in texts)
        if size > MAX_TREE_TEXT_BYTES:
            raise ValueError(
                f"the tree's text (title, description, tags, node texts and option labels) is {size} bytes; "
                f"at most {MAX_TREE_TEXT_BYTES} bytes can be indexed for search"
            )
        return self


class TreeReplace(TreeCreate):
    """PUT /trees/{id}: the complete new content; it becomes the next version."""

    model_config = example({**ex.TREE_CONTENT, "tags": ["printer", "office", "floor-3"]})


class TreeSummary(BaseModel):
    """A tree in lists: its latest version without the nodes."""

    model_config = example(ex.TREE_SUMMARY)

    id: UUID
    account_id: UUID
    version: int
    title: str
    description: str
    category: str
    tags: list[str]
    node_count: int
    created_by: UUID
    created_at: AwareDatetime
    updated_at: AwareDatetime


class TreeRead(TreeSummary):
    """One version of a tree with its nodes (`updated_at` is when this version was written)."""

    model_config = example(ex.TREE)

    root_node_id: str
    nodes: list[TreeNode]


class TreePage(BaseModel):

    model_config = example(ex.page(ex.TREE_SUMMARY))

    items: list[TreeSummary]
    total: int
    limit: int
    offset: int


class TreeCategory(BaseModel):

    model_config = example({"category": "hardware", "count": 12})

    category: str
    count: int


class TreeSearchHit(TreeSummary):
    """A search result; `rank` is PostgreSQL's ts_rank (title weighs most, then description/tags, then nodes)."""

    model_config = example({**ex.TREE_SUMMARY, "rank": 0.6079})

    rank: float


class TreeSearchPage(BaseModel):

    model_config = example({"query": "printer", **ex.page({**ex.TREE_SUMMARY, "rank": 0.6079})})

    query: str
    items: list[TreeSearchHit]
    total: int
    limit: int
    offset: int


class TreeViolation(BaseModel):
    """Why a tree is not a valid graph: the rule broken and the node that breaks it (body of a 422)."""

    model_config = example(
        {
            "rule": "unreachable_from_root",
            "node_id": "orphan",
            "message": "node 'orphan' cannot be reached from the root",
        }
    )

    rule: Literal[
        "duplicate_node_id",
        "root_missing",
        "unknown_next_node",
        "duplicate_option_label",
        "terminal_has_options",
        "question_without_options",
        "unreachable_from_root",
        "no_path_to_terminal",
    ]
    node_id: str
    message: str
