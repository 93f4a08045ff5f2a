"""Outbound calls the handoffs use cases need, as small protocols (implemented in clients.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True)
class SessionInfo:
    """What escalation needs to know about a session."""

    id: UUID
    account_id: UUID
    status: str


class SessionLookup(Protocol):
    """Session id -> the session as the caller may see it, or None (missing or another account's)."""

    async def __call__(self, session_id: UUID, /) -> SessionInfo | None: ...
