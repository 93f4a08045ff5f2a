"""Each session's escalation views (one row per handoff) in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.domain import HandoffView
from sessions.repository.tables import session_escalations


def _view(row: Any) -> HandoffView:
    return HandoffView(**{c.name: getattr(row, c.name) for c in session_escalations.columns})


class EscalationRepository:
    """What the service knows of the handoffs of its sessions, built from handoff events."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_across_accounts(self, *, handoff_id: UUID) -> HandoffView | None:
        """The handoff's view, with a lock held to commit that also covers a view not yet written.

        System-wide on purpose: a handoff id is unique across accounts, and an event is matched to the view its
        earlier events built, whichever account it names.
        """
        await self.session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(str(handoff_id), 0)))
        )
        stmt = sa.select(session_escalations).where(session_escalations.c.handoff_id == handoff_id).with_for_update()
        row = (await self.session.execute(stmt)).first()
        return _view(row) if row is not None else None

    async def save(self, view: HandoffView) -> None:
        values = {c.name: getattr(view, c.name) for c in session_escalations.columns}
        stmt = insert(session_escalations).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[session_escalations.c.handoff_id],
            set_={k: stmt.excluded[k] for k in values if k != "handoff_id"},
        )
        await self.session.execute(stmt)

    async def of_sessions(self, *, account_id: UUID, session_ids: Sequence[UUID]) -> dict[UUID, list[HandoffView]]:
        """The views of each of the given sessions."""
        if not session_ids:
            return {}
        stmt = sa.select(session_escalations).where(
            session_escalations.c.account_id == account_id, session_escalations.c.session_id.in_(list(session_ids))
        )
        found: dict[UUID, list[HandoffView]] = {}
        for row in (await self.session.execute(stmt)).all():
            found.setdefault(row.session_id, []).append(_view(row))
        return found
