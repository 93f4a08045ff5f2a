"""The gateway's unit of work: one transaction and the identity repositories over it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.repository import (
    AccountRepository,
    ApiKeyRepository,
    AttemptRepository,
    TokenRepository,
    UserRepository,
)
from rfkit.db import UnitOfWork


class GatewayUnitOfWork(UnitOfWork):
    """`uow.accounts`, `uow.users`, `uow.tokens` (refresh and denied access tokens), `uow.attempts` (throttling),
    `uow.api_keys`."""

    def __init__(self, session: AsyncSession, topic_prefix: str) -> None:
        super().__init__(session, topic_prefix)
        self.accounts = AccountRepository(session)
        self.users = UserRepository(session)
        self.tokens = TokenRepository(session)
        self.attempts = AttemptRepository(session)
        self.api_keys = ApiKeyRepository(session)
