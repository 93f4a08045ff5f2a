"""FastAPI dependencies of the sessions service, declared once as Annotated aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rfkit.auth import Admin, CurrentPrincipal, Engineer
from rfkit.db import Database
from rfkit.etags import IfMatch, if_match

__all__ = ["Admin", "CurrentPrincipal", "Db", "Engineer", "IfMatchHeader"]


def _db(request: Request) -> Database:
    db: Database = request.app.state.runtime.db
    return db


Db = Annotated[Database, Depends(_db)]
IfMatchHeader = Annotated[IfMatch | None, Depends(if_match)]
