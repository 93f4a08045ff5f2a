"""FastAPI dependencies of the analytics service, declared once as Annotated aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from analytics.recompute import BusinessRecompute
from rfkit.auth import Admin, Engineer
from rfkit.clock import utcnow
from rfkit.db import Database

__all__ = ["Admin", "Db", "Engineer", "Now", "Recompute"]


def _database(request: Request) -> Database:
    db: Database = request.app.state.runtime.db
    return db


Db = Annotated[Database, Depends(_database)]


def _recompute(request: Request) -> BusinessRecompute | None:
    recompute: BusinessRecompute | None = getattr(request.app.state, "business_recompute", None)
    return recompute


# This replica's business-seconds recompute loop (None while the app's lifespan has not started it).
Recompute = Annotated[BusinessRecompute | None, Depends(_recompute)]


# The request's instant: the end of its window (a dependency of its own, so that a test can pin it by this name).
now = utcnow


Now = Annotated[datetime, Depends(now)]
