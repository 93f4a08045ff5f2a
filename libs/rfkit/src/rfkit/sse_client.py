"""A small Server-Sent Events reader over an httpx streamed response, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class EventReader:
    """Reads one stream event by event; comment lines are kept in `comments`, the `retry` field in `retry_ms`."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    retry_ms: int | None = None
    ended: bool = False
    _lines: AsyncIterator[str] | None = None

    async def next(self, *, timeout_s: float = 20.0) -> Event | None:
        """The next event, or None when the server ended the stream; fails after `timeout_s` without one."""
        async with asyncio.timeout(timeout_s):
            return await self._next()

    async def opened(self, *, timeout_s: float = 20.0) -> None:
        """Wait for the server's first block (the `retry` field the live queue opens with): it is listening now."""
        async with asyncio.timeout(timeout_s):
            event = await self._next(until_retry=True)
        if event is not None or self.retry_ms is None:
            raise AssertionError(f"the stream did not open with a retry field: {event!r}")

    async def comment(self, *, timeout_s: float = 20.0) -> str:
        """The next comment line (a heartbeat), read past any events; fails after `timeout_s` without one."""
        async with asyncio.timeout(timeout_s):
            await self._next(until_comment=True)
        if self.ended:
            raise AssertionError("the stream ended without a comment")
        return self.comments[-1]

    async def _next(self, *, until_retry: bool = False, until_comment: bool = False) -> Event | None:
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        kind, last_id, seen = "message", None, False
        data: list[str] = []
        async for line in self._lines:
            if line == "":
                if seen:
                    return Event(kind, "\n".join(data), last_id)
                if until_retry and self.retry_ms is not None:
                    return None
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                self.comments.append(value)
                if until_comment:
                    return None
            elif name == "event":
                kind, seen = value, True
            elif name == "data":
                data.append(value)
                seen = True
            elif name == "id":
                last_id, seen = value, True
            elif name == "retry" and value.isdigit():
                self.retry_ms = int(value)
        self.ended = True
        return None

    async def until_end(self, *, timeout_s: float = 20.0) -> list[Event]:
        """Every event left until the server ends the stream (fails if it has not ended within `timeout_s`)."""
        out = []
        async with asyncio.timeout(timeout_s):
            while (event := await self._next()) is not None:
                out.append(event)
        return out
