"""The only SQL of the sessions service: its tables and one repository class per subject, all account-scoped."""

from sessions.repository.escalations import EscalationRepository
from sessions.repository.sessions import SessionRepository, StepRepository
from sessions.repository.tables import (
    SEARCH_CONFIG,
    SEARCH_VECTOR_SQL,
    metadata,
    session_escalations,
    sessions,
    steps,
    tree_versions,
    trees,
)
from sessions.repository.trees import TreeRepository

__all__ = [
    "SEARCH_CONFIG",
    "SEARCH_VECTOR_SQL",
    "EscalationRepository",
    "SessionRepository",
    "StepRepository",
    "TreeRepository",
    "metadata",
    "session_escalations",
    "sessions",
    "steps",
    "tree_versions",
    "trees",
]
