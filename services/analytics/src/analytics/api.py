"""Routes of the analytics service: the escalation time-to-first-action metric."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from analytics.deps import Db, Engineer
from analytics.handlers import GetEscalationMetric, get_escalation_metric
from rf_contracts.api.analytics import EscalationMetricRead, Period

router = APIRouter(prefix="/analytics", tags=["analytics"])


@router.get("/flowpilot/escalations", response_model=EscalationMetricRead)
async def escalations(
    db: Db,
    principal: Engineer,
    # Required: a missing period is as invalid as an unknown one (422), and the answer names its window.
    period: Annotated[Period, Query(description="the window: the last 7, 30 or 90 days up to now")],
) -> EscalationMetricRead:
    """Escalation time-to-first-action for the caller's account (engineer+)."""
    query = GetEscalationMetric(account_id=principal.account_id, period=period, now=datetime.now(UTC))
    return await get_escalation_metric(query, db=db)
