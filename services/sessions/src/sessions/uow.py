"""The sessions service's unit of work: one transaction with the repositories handlers use, and its events."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rfkit.db import UnitOfWork
from sessions.repository import EscalationRepository, SessionRepository, StepRepository, TreeRepository


class SessionsUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, topic_prefix: str) -> None:
        super().__init__(session, topic_prefix)
        self.trees = TreeRepository(session)
        self.sessions = SessionRepository(session)
        self.steps = StepRepository(session)
        self.escalations = EscalationRepository(session)
