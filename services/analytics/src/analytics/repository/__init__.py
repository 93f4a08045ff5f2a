"""The escalation read model in PostgreSQL, the only SQL of the service: tables, writes, metric and insights."""

from analytics.repository.escalations import (
    ActorStats,
    EscalationQueries,
    EscalationRepository,
    EscalationStats,
)
from analytics.repository.insights import Breakdown, HandoffLine, HandoffLines, InsightQueries, Series
from analytics.repository.tables import READ_MODEL_TABLES, account_watermarks, handoffs, metadata, session_trees, steps

__all__ = [
    "READ_MODEL_TABLES",
    "ActorStats",
    "Breakdown",
    "EscalationQueries",
    "EscalationRepository",
    "EscalationStats",
    "HandoffLine",
    "HandoffLines",
    "InsightQueries",
    "Series",
    "account_watermarks",
    "handoffs",
    "metadata",
    "session_trees",
    "steps",
]
