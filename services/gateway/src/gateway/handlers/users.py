"""An admin managing the users of their account: list, add, change (role, active, name), reset a password."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from gateway.domain import EmailTaken, Role, User, UserNotFound, check_admin_remains, public_fields
from gateway.principals import PrincipalCache
from gateway.security import Passwords
from gateway.uow import GatewayUnitOfWork
from rf_contracts.api.identity import UserPage, UserRead
from rfkit.clock import utcnow
from rfkit.db import Database


@dataclass(frozen=True)
class CreateUser:
    account_id: UUID
    email: str
    password: str
    full_name: str
    role: Role


@dataclass(frozen=True)
class UpdateUser:
    """Absent (None) fields stay as they are."""

    account_id: UUID
    user_id: UUID
    role: Role | None = None
    is_active: bool | None = None
    full_name: str | None = None


@dataclass(frozen=True)
class ResetPassword:
    account_id: UUID
    user_id: UUID
    new_password: str


async def password_hash_for_new_user(*, email: str, password: str, db: Database, passwords: Passwords) -> str:
    """The new user's password hash, after a cheap early 409 for a taken email (spares the hash's CPU).

    The check is its own transaction, and the hash is computed outside any: argon2's time holds no pooled
    connection. The insert that follows, in the caller's transaction, is what decides a race for the email.
    """
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        if await uow.users.email_taken_any_account(email=email):
            raise EmailTaken()
    return await passwords.hash(password)


async def list_users(*, account_id: UUID, limit: int, offset: int, db: Database) -> UserPage:
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        users, total = await uow.users.page(account_id=account_id, limit=limit, offset=offset)
    return UserPage(items=[_read(u) for u in users], total=total, limit=limit, offset=offset)


async def create_user(cmd: CreateUser, *, db: Database, passwords: Passwords) -> UserRead:
    password_hash = await password_hash_for_new_user(email=cmd.email, password=cmd.password, db=db,
                                                     passwords=passwords)
    now = utcnow()
    user = User(id=uuid.uuid4(), account_id=cmd.account_id, email=cmd.email, full_name=cmd.full_name,
                password_hash=password_hash, role=cmd.role, is_active=True, created_at=now, updated_at=now)
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        await uow.users.add(user=user)
    return _read(user)


async def update_user(cmd: UpdateUser, *, db: Database, principals: PrincipalCache) -> UserRead:
    """Change role, active flag or name. Deactivating ends the user's sessions at once."""
    now = utcnow()
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        # Locking the account serializes changes to its users: two admins demoting each other at the same
        # time cannot both pass the "an active admin remains" check.
        if await uow.accounts.get(account_id=cmd.account_id, lock=True) is None:
            raise UserNotFound()
        target = await uow.users.get(account_id=cmd.account_id, user_id=cmd.user_id, lock=True)
        if target is None:
            raise UserNotFound()
        changes: dict[str, Any] = {
            name: value for name, value in
            (("role", cmd.role), ("is_active", cmd.is_active), ("full_name", cmd.full_name)) if value is not None
        }
        new_role = changes.get("role", target.role)
        new_active = changes.get("is_active", target.is_active)
        check_admin_remains(
            target_role=target.role, target_active=target.is_active, new_role=new_role, new_active=new_active,
            active_admins=await uow.users.count_active_admins(account_id=cmd.account_id),
        )
        if changes:
            await uow.users.update(account_id=cmd.account_id, user_id=cmd.user_id, changes=changes, now=now)
        if target.is_active and not new_active:
            await uow.tokens.revoke_families(account_id=cmd.account_id, user_id=cmd.user_id, now=now,
                                             reason="user_deactivated")
        elif new_role != target.role:
            # The other services learn of it from the denial feed: the user's live tokens carry the old role.
            await uow.tokens.deny_live_access_tokens(account_id=cmd.account_id, user_id=cmd.user_id, now=now,
                                                     reason="role_changed")
        updated = await uow.users.get(account_id=cmd.account_id, user_id=cmd.user_id)
    principals.clear()
    assert updated is not None
    return _read(updated)


async def reset_password(cmd: ResetPassword, *, db: Database, passwords: Passwords, principals: PrincipalCache) -> None:
    """An admin sets a user's password: every session of that user ends (refresh families revoked, live access
    tokens denied), so the user signs in again with the new one. Their login lockout, if any, is lifted."""
    # Hashed before the transaction: argon2's time holds no pooled connection (nor the user's row lock).
    password_hash = await passwords.hash(cmd.new_password)
    now = utcnow()
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        target = await uow.users.get(account_id=cmd.account_id, user_id=cmd.user_id, lock=True)
        if target is None:
            raise UserNotFound()
        await uow.users.update(account_id=cmd.account_id, user_id=cmd.user_id,
                               changes={"password_hash": password_hash}, now=now)
        await uow.tokens.revoke_families(account_id=cmd.account_id, user_id=cmd.user_id, now=now, reason="revoked")
        await uow.attempts.clear(scope="email", key=target.email)
    principals.clear()


def _read(user: User) -> UserRead:
    return UserRead.model_validate(public_fields(user))
