"""Routes of the analytics service: the escalation time-to-first-action metric and its insights."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from analytics.deps import Admin, Db, Engineer, Now, Recompute
from analytics.handlers import (
    GetBreakdown,
    GetEscalationMetric,
    GetSeries,
    ListHandoffs,
    SetBusinessHours,
    export_handoffs,
    get_breakdown,
    get_escalation_metric,
    get_series,
    list_handoffs,
    set_business_hours,
)
from analytics.handlers import (
    get_business_hours as read_business_hours,
)
from rf_contracts.api.analytics import (
    CSV_EXAMPLE,
    BreakdownBy,
    DrillDownFormat,
    DrillDownOrder,
    EscalationBreakdownRead,
    EscalationHandoffPage,
    EscalationMetricRead,
    EscalationSeriesRead,
    Period,
)
from rf_contracts.api.business_hours import BusinessHoursRead, BusinessHoursWrite, Clock

router = APIRouter(prefix="/analytics", tags=["analytics"])

# Required: a missing period is as invalid as an unknown one (422), and the answer names its window.
PeriodParam = Annotated[Period, Query(description="the window: the last 7, 30 or 90 days up to now")]
# Section 7: 1-500, default 50, outside that 422 (never clamped).
LimitParam = Annotated[int, Query(ge=1, le=500, description="page size, 1 to 500")]
OffsetParam = Annotated[int, Query(ge=0, le=2**31 - 1, description="rows to skip")]
ClockParam = Annotated[
    Clock, Query(description="wall: elapsed seconds; business: only the open seconds of the account's business hours")
]
TzParam = Annotated[str, Query(min_length=1, max_length=64, description="IANA time zone name, e.g. Europe/Paris")]
CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
        "description": "one page as JSON; with format=csv or Accept: text/csv every row as an RFC 4180 attachment",
    }
}


@router.get("/flowpilot/escalations", response_model=EscalationMetricRead)
async def escalations(
    db: Db, principal: Engineer, now: Now, period: PeriodParam, clock: ClockParam = "wall"
) -> EscalationMetricRead:
    """Escalation time-to-first-action for the caller's account (engineer+)."""
    query = GetEscalationMetric(account_id=principal.account_id, period=period, now=now, clock=clock)
    return await get_escalation_metric(query, db=db)


@router.get("/flowpilot/escalations/breakdown", response_model=EscalationBreakdownRead)
async def escalation_breakdown(
    db: Db,
    principal: Engineer,
    now: Now,
    period: PeriodParam,
    by: Annotated[BreakdownBy, Query(description="group by the session's tree, its category, the priority or claimer")],
    clock: ClockParam = "wall",
) -> EscalationBreakdownRead:
    """The metric per tree, category, priority or claimer (engineer+)."""
    query = GetBreakdown(account_id=principal.account_id, period=period, by=by, now=now, clock=clock)
    return await get_breakdown(query, db=db)


@router.get("/flowpilot/escalations/handoffs", response_model=EscalationHandoffPage, responses=CSV_ANSWER)
async def escalation_handoffs(
    request: Request,
    db: Db,
    principal: Engineer,
    now: Now,
    period: PeriodParam,
    order: Annotated[DrillDownOrder, Query(description="slowest (delta, else waiting time) or newest claim first")] = (
        "slowest"
    ),
    limit: LimitParam = 50,
    offset: OffsetParam = 0,
    format: Annotated[DrillDownFormat | None, Query(description="csv: every row as a CSV attachment")] = None,
    clock: ClockParam = "wall",
) -> Any:
    """The handoffs the metric counts, one page, or every row as CSV (engineer+)."""
    query = ListHandoffs(
        account_id=principal.account_id, period=period, order=order, now=now, limit=limit, offset=offset, clock=clock
    )
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        return StreamingResponse(
            await export_handoffs(query, db=db),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="escalation-handoffs-{period}-{order}.csv"'},
        )
    return await list_handoffs(query, db=db)


@router.get("/flowpilot/escalations/series", response_model=EscalationSeriesRead)
async def escalation_series(
    db: Db, principal: Engineer, now: Now, period: PeriodParam, tz: TzParam = "UTC", clock: ClockParam = "wall"
) -> EscalationSeriesRead:
    """The metric per calendar day in a time zone, zero-filled, and the histogram of deltas (engineer+)."""
    query = GetSeries(account_id=principal.account_id, period=period, tz=tz, now=now, clock=clock)
    return await get_series(query, db=db)


@router.get("/business-hours", response_model=BusinessHoursRead)
async def get_business_hours(db: Db, principal: Engineer) -> BusinessHoursRead:
    """The account's business hours (engineer+); 404 business_hours_not_set when none."""
    return await read_business_hours(account_id=principal.account_id, db=db)


@router.put("/business-hours", response_model=BusinessHoursRead)
async def put_business_hours(
    body: BusinessHoursWrite, db: Db, principal: Admin, recompute: Recompute
) -> BusinessHoursRead:
    """Replace the account's business hours (admin); the next clock=business answer uses them."""
    command = SetBusinessHours(
        account_id=principal.account_id,
        timezone=body.timezone,
        week=body.week.model_dump(),
        holidays=list(body.holidays),
    )
    return await set_business_hours(command, db=db, on_change=recompute.wake if recompute else None)
