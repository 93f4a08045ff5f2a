"""Hostile JSON request bodies stopped at the door: size, depth, non-finite numbers, NUL and lone surrogates.

Python's json module accepts `NaN`, `Infinity` and `1e999` (as float infinity) and `"\\ud800"` (a lone surrogate),
none of which can be stored in PostgreSQL or written back as JSON; a body nested a few hundred levels deep is
parsed fine but cannot be serialized again by pydantic. Every such body is answered here with a 422 in the
usual `{"detail", "code": "validation_failed", "errors": [{"loc", "msg", "type"}]}` shape, before any route
(and so any write) sees it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rfkit.problems import invalid_request, problem

# Deep enough for every model of the API (a tree body is 5 levels deep) and for free-form session contexts;
# far below the depth at which pydantic refuses to serialize (255) or Python's parser recurses out (~1000).
MAX_DEPTH = 32
MAX_BODY_BYTES = 8 * 1024 * 1024
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOO_LARGE = "request body too large"


class Refused(ValueError):
    """Why a body is refused, and where in it (the 422's `loc`, after "body")."""

    def __init__(self, msg: str, loc: tuple[str | int, ...] = (), kind: str = "json_invalid") -> None:
        super().__init__(msg)
        self.msg = msg
        self.loc = loc
        self.kind = kind


def _no_constant(name: str) -> Any:
    raise Refused(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(f"number {text[:40]} is out of range")
    return value


def text_problem(text: str) -> str | None:
    """Why PostgreSQL could not store this text (NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "text must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (lone surrogate)"
    return None


def _walk(value: Any) -> Iterator[tuple[Any, tuple[str | int, ...]]]:
    """Every value with its path, iteratively (the depth is what is being checked)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        yield item, loc
        if isinstance(item, dict):
            stack.extend((v, (*loc, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(item))


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise Refused for a value nested deeper than `max_depth` or holding text PostgreSQL cannot store."""
    for item, loc in _walk(value):
        if isinstance(item, (dict, list)) and len(loc) >= max_depth:
            raise Refused(f"JSON nested deeper than {max_depth} levels", loc[:max_depth])
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise Refused(problem, loc, "string_unstorable")
        elif isinstance(item, dict):
            for key in item:
                problem = text_problem(key)
                if problem:
                    raise Refused(f"key: {problem}", loc, "string_unstorable")


def loads(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body as strict JSON; raise Refused for anything the service could not store or answer."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except Refused:
        raise
    except json.JSONDecodeError as exc:
        raise Refused(f"JSON decode error: {exc.msg}", (exc.pos,)) from None
    except UnicodeDecodeError:
        raise Refused("JSON decode error: the body is not valid UTF-8") from None
    except RecursionError:
        raise Refused(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # an integer longer than Python converts (4300 digits)
        raise Refused(f"JSON decode error: {exc}") from None
    # Walked only when something could be wrong: an escape (the only way to a NUL or a surrogate in valid
    # JSON text) or more brackets than the depth allowed.
    if b"\\u" in body or body.count(b"[") + body.count(b"{") > max_depth:
        check(value, max_depth=max_depth)
    return value


def refusal(exc: Refused) -> JSONResponse:
    return invalid_request([{"type": exc.kind, "loc": ["body", *exc.loc], "msg": exc.msg}])


def _is_json(scope: Scope) -> bool:
    # The same bodies FastAPI reads as JSON: no content type, application/json or application/*+json.
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    return True


class StrictJSON:
    """Reads a JSON request body whole, refuses it (413, 422) or hands it on unchanged."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS_METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await receive()
            except HTTPException as exc:  # an outer limit refusing the body as it arrives (the gateway's)
                await problem(exc.status_code, str(exc.detail), headers=exc.headers)(scope, receive, send)
                return
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the app finds out as it reads
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await problem(413, _TOO_LARGE, "request_too_large")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if messages[-1]["type"] == "http.request":
            if body:
                try:
                    loads(body, max_depth=self.max_depth)
                except Refused as exc:
                    await refusal(exc)(scope, receive, send)
                    return
            messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)
