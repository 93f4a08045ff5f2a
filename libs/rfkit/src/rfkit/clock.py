"""The wall clock services read "now" from: aware and in UTC, the one kind of time the contracts carry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

# What a component that must be moved through time in tests takes instead of calling `utcnow` itself.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Server time for every stored timestamp: UTC with microseconds."""
    return datetime.now(UTC)
