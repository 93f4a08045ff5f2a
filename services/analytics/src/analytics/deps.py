"""FastAPI dependencies of the analytics service, declared once as Annotated aliases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from rfkit.auth import Admin, Engineer
from rfkit.db import Database

__all__ = ["Admin", "Db", "Engineer", "Now"]


def _database(request: Request) -> Database:
    db: Database = request.app.state.runtime.db
    return db


Db = Annotated[Database, Depends(_database)]


def now() -> datetime:
    """The request's instant: the end of its window (a dependency, so that a test can pin it)."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(now)]
