"""Throttling of attempts (registrations per address, login failures per email and per address, wrong passwords
per user), counted in the database so that every gateway replica shares the count."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.domain import AttemptLimit, TooManyAttempts, retry_after
from gateway.uow import GatewayUnitOfWork
from rfkit.db import Database


async def admit(
    limits: list[AttemptLimit], *, window: timedelta, now: datetime, db: Database,
    refuse: Callable[[int], TooManyAttempts] = TooManyAttempts,
) -> list[int]:
    """Record this attempt under each limit's key, then refuse it (`refuse(seconds to wait)`) when a key has had
    `limit` attempts in the window. Returns the attempt's ids, for the caller to withdraw on success.

    Three transactions, each needed: the attempt is committed before anything is counted, so that concurrent
    attempts (each in its own transaction) count against each other, and it stays committed when the use case
    then fails (a failed login must count). A refused attempt is withdrawn in a transaction of its own: it must
    not push the lockout further out.
    """
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        mine = await uow.attempts.record(limits=limits, now=now)
    waits = []
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        for limit in limits:
            earlier = await uow.attempts.times_since(scope=limit.scope, key=limit.key, since=now - window, exclude=mine)
            wait = retry_after(earlier, limit=limit.limit, window=window, now=now)
            if wait is not None:
                waits.append(wait)
    if waits:
        async with db.unit_of_work(GatewayUnitOfWork) as uow:
            await uow.attempts.withdraw(ids=mine)
        raise refuse(max(waits))
    return mine
