"""Sessions and their journal of steps in PostgreSQL."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from rf_contracts.api.sessions import StepRead
from rfkit.db import page_of
from sessions.domain import SessionFilter, SessionState
from sessions.repository.tables import sessions, steps

# What a write may change of a session; the rest is fixed when it starts.
_MUTABLE = ("title", "notes", "status", "current_node_id", "updated_at", "completed_at", "completed_by", "outcome",
            "summary")


def _state(row: Any) -> SessionState:
    return SessionState(**{name: getattr(row, name) for name in SessionState.__dataclass_fields__})


class SessionRepository:
    """The account's sessions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, state: SessionState) -> None:
        await self.session.execute(sa.insert(sessions).values(**asdict(state)))

    async def get(self, *, account_id: UUID, session_id: UUID, lock: bool = False) -> SessionState | None:
        """The session, or None; `lock` holds its row to commit (answers and completion read-modify-write it)."""
        stmt = sa.select(sessions).where(sessions.c.id == session_id, sessions.c.account_id == account_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).first()
        return _state(row) if row is not None else None

    async def save(self, state: SessionState) -> None:
        """Write what may change of a session (read with `lock=True` in this unit of work)."""
        await self.session.execute(
            sa.update(sessions)
            .where(sessions.c.id == state.id, sessions.c.account_id == state.account_id)
            .values(**{name: getattr(state, name) for name in _MUTABLE})
        )

    async def page(
        self, *, account_id: UUID, where: SessionFilter, limit: int, offset: int
    ) -> tuple[list[SessionState], int]:
        """Sessions newest first, and how many match (each field `where` gives is a column the session matches)."""
        cond = [sessions.c.account_id == account_id]
        cond += [sessions.c[name] == value for name, value in asdict(where).items() if value is not None]
        rows, total = await page_of(
            self.session, sessions, cond, order_by=(sessions.c.started_at.desc(), sessions.c.id), limit=limit,
            offset=offset,
        )
        return [_state(r) for r in rows], total


class StepRepository:
    """The journal of each session of the account."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, step: StepRead) -> None:
        await self.session.execute(sa.insert(steps).values(**step.model_dump()))

    async def page(
        self, *, account_id: UUID, session_id: UUID, limit: int | None = None, offset: int = 0
    ) -> tuple[list[StepRead], int]:
        """A session's steps oldest first (all of them without `limit`), and how many it has."""
        cond = [steps.c.session_id == session_id, steps.c.account_id == account_id]
        rows, total = await page_of(
            self.session, steps, cond, order_by=(steps.c.created_at, steps.c.seq), limit=limit, offset=offset
        )
        return [StepRead(**{name: getattr(r, name) for name in StepRead.model_fields}) for r in rows], total
