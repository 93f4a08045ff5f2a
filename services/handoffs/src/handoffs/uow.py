"""The unit of work of the handoffs service: one transaction and the repositories over it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.repository import HandoffRepository
from rfkit.db import UnitOfWork


class HandoffsUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, topic_prefix: str) -> None:
        super().__init__(session, topic_prefix)
        self.handoffs = HandoffRepository(session)
