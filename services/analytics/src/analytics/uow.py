"""The analytics unit of work: one transaction of the read model, with its repository."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from analytics.repository import BusinessHoursRepository, BusinessSecondsRepository, EscalationRepository
from rfkit.db import UnitOfWork


class AnalyticsUnitOfWork(UnitOfWork):
    """`uow.escalations`: the escalation read model's writes; `uow.business_hours`: the account's schedule;
    `uow.business_seconds`: the stored business seconds (the recompute loop)."""

    def __init__(self, session: AsyncSession, topic_prefix: str) -> None:
        super().__init__(session, topic_prefix)
        self.escalations = EscalationRepository(session)
        self.business_hours = BusinessHoursRepository(session)
        self.business_seconds = BusinessSecondsRepository(session)
