"""Entity tags and If-Match preconditions (RFC 9110 sections 8.8.3 and 13.1.1) for optimistic concurrency."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Header, Request

from rfkit.errors import PreconditionFailed

__all__ = ["IfMatch", "PreconditionFailed", "if_match", "micros", "parse_if_match", "strong_etag"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# One element of an If-Match list: an optional weakness marker and a quoted opaque tag (etagc excludes DQUOTE).
_ELEMENT = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')


def strong_etag(*parts: object) -> str:
    """A strong entity tag, quoted as it goes in the ETag header: `"t-<id>-<version>"`."""
    return '"' + "-".join(str(p) for p in parts) + '"'


def micros(at: datetime) -> int:
    """A timestamp as whole microseconds since the epoch (exact, unlike float seconds)."""
    return (at - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class IfMatch:
    """A parsed If-Match: `*` (any current representation) or the strong tags it names.

    Weak tags are kept out of `strong`: If-Match compares strongly, so a weak tag never matches.
    """

    any: bool
    strong: frozenset[str]

    def check(self, current: str) -> None:
        """Raise 412 unless `current` (a quoted strong tag) satisfies this precondition."""
        if not self.any and current not in self.strong:
            raise PreconditionFailed(
                "the resource has changed since it was read (If-Match does not match its current ETag); "
                "read it again and retry"
            )


def parse_if_match(values: list[str]) -> IfMatch | None:
    """All If-Match field lines of a request as one precondition; None when there is none (no condition)."""
    joined = ",".join(values).strip()
    if not joined:
        return None
    if joined == "*":
        return IfMatch(any=True, strong=frozenset())
    strong: set[str] = set()
    for element in _split(joined):
        match = _ELEMENT.fullmatch(element)
        if match is None:
            raise PreconditionFailed(
                f"If-Match must be * or a comma-separated list of quoted entity tags, got {element.strip()[:80]!r}"
            )
        if match.group(1) is None:
            strong.add(f'"{match.group(2)}"')
    return IfMatch(any=False, strong=frozenset(strong))


def _split(value: str) -> list[str]:
    """Split a list on the commas outside quotes (an opaque tag may itself contain a comma); empty elements go."""
    elements: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            elements.append("".join(current))
            current = []
        else:
            current.append(char)
    elements.append("".join(current))
    return [e for e in elements if e.strip()]


def if_match(
    request: Request,
    _: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='the ETag read earlier (e.g. "t-<id>-3"); a write to a changed resource is 412. '
            "* or no header: no condition",
        ),
    ] = None,
) -> IfMatch | None:
    """FastAPI dependency: the request's If-Match (every field line of it), parsed; None without one."""
    return parse_if_match(request.headers.getlist("if-match"))
