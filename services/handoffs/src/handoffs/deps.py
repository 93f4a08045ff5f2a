"""FastAPI dependencies of the handoffs routes, declared once as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from handoffs.clients import SessionsClient
from handoffs.domain import Actor
from handoffs.ports import SessionLookup
from rfkit.auth import Admin, CurrentPrincipal, Engineer, Principal
from rfkit.db import Database
from rfkit.logs import request_id_var

__all__ = ["Admin", "CurrentPrincipal", "Db", "Engineer", "Sessions", "SessionsLookup", "actor_of"]


def get_db(request: Request) -> Database:
    return request.app.state.runtime.db


def get_sessions_client(request: Request) -> SessionsClient:
    """The sessions client opened by the app's lifespan (tests may override this dependency)."""
    return request.app.state.sessions_client


def get_sessions_lookup(
    request: Request, client: Annotated[SessionsClient, Depends(get_sessions_client)]
) -> SessionLookup:
    """A session lookup that asks on behalf of the caller (its token and request id are forwarded)."""
    authorization = request.headers.get("authorization", "")
    return client.on_behalf_of(authorization=authorization, request_id=request_id_var.get())


Db = Annotated[Database, Depends(get_db)]
Sessions = Annotated[SessionsClient, Depends(get_sessions_client)]
SessionsLookup = Annotated[SessionLookup, Depends(get_sessions_lookup)]


def actor_of(principal: Principal) -> Actor:
    return Actor(user_id=principal.user_id, is_admin=principal.at_least("admin"))
