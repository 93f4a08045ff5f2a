"""The escalation read model in PostgreSQL, the only SQL of the service: tables, writes, metric and insights."""

from analytics.repository.business_hours import (
    BusinessHoursRepository,
    ClaimColumns,
    ClaimRowQueries,
    StoredSchedule,
)
from analytics.repository.business_seconds import (
    BusinessSecondsQueries,
    BusinessSecondsRepository,
    PendingClaim,
    ScheduledAccount,
    SlowestCandidates,
)
from analytics.repository.clock import ClockState
from analytics.repository.escalations import (
    EscalationQueries,
    EscalationRepository,
    EscalationStats,
)
from analytics.repository.insights import Breakdown, HandoffLine, HandoffLines, InsightQueries, Series
from analytics.repository.tables import (
    READ_MODEL_TABLES,
    account_watermarks,
    business_hours,
    handoffs,
    metadata,
    session_trees,
    steps,
)

__all__ = [
    "READ_MODEL_TABLES",
    "Breakdown",
    "BusinessHoursRepository",
    "BusinessSecondsQueries",
    "BusinessSecondsRepository",
    "ClaimColumns",
    "ClaimRowQueries",
    "ClockState",
    "EscalationQueries",
    "EscalationRepository",
    "EscalationStats",
    "HandoffLine",
    "HandoffLines",
    "InsightQueries",
    "PendingClaim",
    "ScheduledAccount",
    "Series",
    "SlowestCandidates",
    "StoredSchedule",
    "account_watermarks",
    "business_hours",
    "handoffs",
    "metadata",
    "session_trees",
    "steps",
]
