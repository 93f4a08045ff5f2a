"""The gateway's FastAPI dependencies, declared once as Annotated aliases for the identity and API-key routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

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


def _part(name: str) -> Callable[[Request], Any]:
    """The dependency that answers one of the app's IdentityParts, by its field name."""

    def part(request: Request) -> Any:
        parts: IdentityParts = request.app.state.identity
        return getattr(parts, name)

    return part


def _person(principal: CurrentPrincipal) -> Principal:
    if is_api_key_token(principal.token_id):
        raise ApiKeyNotAllowed()
    return principal


def _person_admin(principal: Admin) -> Principal:
    return _person(principal)


def _client_address(request: Request) -> str:
    # The peer, or behind a trusted proxy the client it forwarded for (RF_TRUSTED_PROXIES, gateway.main).
    return request.client.host if request.client else "unknown"


Db = Annotated[Database, Depends(_part("db"))]
PasswordHasher = Annotated[Passwords, Depends(_part("passwords"))]
Tokens = Annotated[TokenIssuer, Depends(_part("tokens"))]
Policy = Annotated[IdentityPolicy, Depends(_part("policy"))]
# The memory of recently checked tokens, which use cases that revoke anything clear.
Principals = Annotated[PrincipalCache, Depends(_part("principals"))]
ClientAddress = Annotated[str, Depends(_client_address)]
# What this process knows of presented API keys; revoking a key makes it forget that key.
Keys = Annotated[KeyExchange, Depends(_part("keys"))]
# A person signed in with a password (any role), not an API key (403 api_key_not_allowed).
Person = Annotated[Principal, Depends(_person)]
# An admin who is a person: API keys are managed by people only.
PersonAdmin = Annotated[Principal, Depends(_person_admin)]
