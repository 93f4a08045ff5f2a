"""What the routes of trees and sessions share: page parameters and documented answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from rf_contracts.api.trees import Category, TreeViolation

Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
CategoryFilter = Annotated[Category | None, Query(description="only trees of this category")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or bad token"},
    403: {"description": "role too low"},
    404: {"description": "not found or belongs to another account"},
}
INVALID_TREE: dict[int | str, dict[str, Any]] = {
    422: {"description": "invalid input, or a tree that is not a valid graph (each violation names node and rule)",
          "model": dict[str, list[TreeViolation]]}
}

ETAG = {"ETag": {"description": "strong entity tag of this version of the resource; send it back as If-Match",
                  "schema": {"type": "string"}}}
TREE_ETAG = {"description": "the tree", "headers": ETAG}
SESSION_ETAG = {"description": "the session", "headers": ETAG}
STALE: dict[int | str, dict[str, Any]] = {
    412: {"description": "If-Match does not match the current ETag (the resource changed); code precondition_failed"}
}
