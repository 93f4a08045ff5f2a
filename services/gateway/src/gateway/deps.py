"""The gateway's FastAPI dependencies, declared once as Annotated aliases for the identity and API-key routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.domain import ApiKeyNotAllowed, IdentityPolicy, is_api_key_token
from gateway.key_exchange import KeyExchange
from gateway.principals import PrincipalCache
from gateway.security import Passwords, TokenIssuer
from rfkit.auth import Admin, CurrentPrincipal, Principal
from rfkit.db import Database


@dataclass(frozen=True)
class IdentityParts:
    """What the identity use cases are given besides their command; built by gateway.main, kept on the app."""

    db: Database
    passwords: Passwords
    tokens: TokenIssuer
    policy: IdentityPolicy
    principals: PrincipalCache
    keys: KeyExchange


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


def _keys(request: Request) -> KeyExchange:
    return _parts(request).keys


def _person(principal: CurrentPrincipal) -> Principal:
    if is_api_key_token(principal.token_id):
        raise ApiKeyNotAllowed()
    return principal


def _person_admin(principal: Admin) -> Principal:
    return _person(principal)


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
# What this process knows of presented API keys; revoking a key makes it forget that key.
Keys = Annotated[KeyExchange, Depends(_keys)]
# A person signed in with a password (any role), not an API key (403 api_key_not_allowed).
Person = Annotated[Principal, Depends(_person)]
# An admin who is a person: API keys are managed by people only.
PersonAdmin = Annotated[Principal, Depends(_person_admin)]
