"""The gateway's FastAPI dependencies, declared once as Annotated aliases for the identity routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.domain import IdentityPolicy
from gateway.principals import PrincipalCache
from gateway.security import Passwords, TokenIssuer
from rfkit.db import Database


@dataclass(frozen=True)
class IdentityParts:
    """What the identity use cases are given besides their command; built by gateway.main, kept on the app."""

    db: Database
    passwords: Passwords
    tokens: TokenIssuer
    policy: IdentityPolicy
    principals: PrincipalCache


def _parts(request: Request) -> IdentityParts:
    return request.app.state.identity  # type: ignore[no-any-return]


def _db(request: Request) -> Database:
    return _parts(request).db


def _passwords(request: Request) -> Passwords:
    return _parts(request).passwords


def _tokens(request: Request) -> TokenIssuer:
    return _parts(request).tokens


def _policy(request: Request) -> IdentityPolicy:
    return _parts(request).policy


def _principals(request: Request) -> PrincipalCache:
    return _parts(request).principals


def _client_address(request: Request) -> str:
    # The peer, or behind a trusted proxy the client it forwarded for (RF_TRUSTED_PROXIES, gateway.main).
    return request.client.host if request.client else "unknown"


Db = Annotated[Database, Depends(_db)]
PasswordHasher = Annotated[Passwords, Depends(_passwords)]
Tokens = Annotated[TokenIssuer, Depends(_tokens)]
Policy = Annotated[IdentityPolicy, Depends(_policy)]
# The memory of recently checked tokens, which use cases that revoke anything clear.
Principals = Annotated[PrincipalCache, Depends(_principals)]
ClientAddress = Annotated[str, Depends(_client_address)]
