"""The gateway's tables (accounts, users, refresh tokens, revoked access tokens, login attempts) and queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

# The migrations build these tables; tests/test_schema_matches_metadata.py checks that they agree.
metadata = sa.MetaData()


class Xid8(sa.types.UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (written by the column's default, compared in SQL only)."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id"), nullable=False),
    # Always stored in lower case (emails are case-insensitive); the check keeps it that way.
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("full_name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('viewer', 'engineer', 'admin')", name="ck_users_role"),
    sa.CheckConstraint("email = lower(email)", name="ck_users_email_lower"),
    sa.Index("uq_users_email", "email", unique=True),
    sa.Index("ix_users_account", "account_id", "created_at"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("token_hash", sa.Text, nullable=False),
    sa.Column("family_id", sa.Uuid, nullable=False),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("account_id", sa.Uuid, nullable=False),
    # The access token issued together with this refresh token: revoked with the family.
    sa.Column("access_jti", sa.Text, nullable=False),
    sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Index("uq_refresh_tokens_hash", "token_hash", unique=True),
    sa.Index("ix_refresh_tokens_family", "family_id"),
    sa.Index("ix_refresh_tokens_user", "user_id"),
    sa.Index("ix_refresh_tokens_access_jti", "access_jti"),
    sa.Index("ix_refresh_tokens_expires", "expires_at"),
)

revoked_access_tokens = sa.Table(
    "revoked_access_tokens",
    metadata,
    sa.Column("jti", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    # The feed the other services follow (GET /internal/v1/token-denials): seq orders it, reason explains it.
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default="revoked"),
    sa.Column("txid", Xid8, nullable=False, server_default=sa.text("pg_current_xact_id()")),
    sa.CheckConstraint(
        "reason IN ('revoked', 'user_deactivated', 'role_changed')", name="ck_revoked_access_tokens_reason"
    ),
    sa.Index("ix_revoked_access_tokens_expires", "expires_at"),
    sa.Index("uq_revoked_access_tokens_seq", "seq", unique=True),
)

DenialReason = Literal["revoked", "user_deactivated", "role_changed"]

login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),  # "email" or "address"
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_login_attempts_key", "scope", "key", "attempted_at"),
    sa.Index("ix_login_attempts_time", "attempted_at"),
)


@dataclass(frozen=True)
class UserRow:
    id: UUID
    account_id: UUID
    email: str
    full_name: str
    password_hash: str
    role: str
    is_active: bool
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "password_hash"}


def _user(row: Any) -> UserRow | None:
    return None if row is None else UserRow(**row._mapping)


# ---- accounts and users ------------------------------------------------------------------------------

async def insert_account(session: AsyncSession, *, account_id: UUID, name: str, now: datetime) -> dict[str, Any]:
    await session.execute(sa.insert(accounts).values(id=account_id, name=name, created_at=now))
    return {"id": account_id, "name": name, "created_at": now}


async def get_account(session: AsyncSession, *, account_id: UUID, lock: bool = False) -> dict[str, Any] | None:
    query = sa.select(accounts).where(accounts.c.id == account_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else dict(row._mapping)


async def insert_user(
    session: AsyncSession, *, user_id: UUID, account_id: UUID, email: str, full_name: str, password_hash: str,
    role: str, now: datetime,
) -> UserRow:
    """Insert a user; a taken email raises sqlalchemy.exc.IntegrityError (unique index)."""
    user = UserRow(id=user_id, account_id=account_id, email=email, full_name=full_name, password_hash=password_hash,
                   role=role, is_active=True, created_at=now, updated_at=now)
    await session.execute(sa.insert(users).values(**user.__dict__))
    return user


async def email_taken(session: AsyncSession, *, email: str) -> bool:
    return bool(await session.scalar(sa.select(sa.exists().where(users.c.email == email))))


async def user_by_email(session: AsyncSession, *, email: str) -> UserRow | None:
    return _user((await session.execute(sa.select(users).where(users.c.email == email))).first())


async def get_user(
    session: AsyncSession, *, account_id: UUID, user_id: UUID, lock: bool = False
) -> UserRow | None:
    query = sa.select(users).where(users.c.id == user_id, users.c.account_id == account_id)
    if lock:
        query = query.with_for_update()
    return _user((await session.execute(query)).first())


async def list_users(
    session: AsyncSession, *, account_id: UUID, limit: int, offset: int
) -> tuple[list[UserRow], int]:
    total = await session.scalar(sa.select(sa.func.count()).select_from(users).where(users.c.account_id == account_id))
    rows = await session.execute(
        sa.select(users).where(users.c.account_id == account_id)
        .order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
    )
    return [UserRow(**r._mapping) for r in rows], int(total or 0)


async def count_active_admins(session: AsyncSession, *, account_id: UUID) -> int:
    return int(
        await session.scalar(
            sa.select(sa.func.count()).select_from(users).where(
                users.c.account_id == account_id, users.c.role == "admin", users.c.is_active.is_(True)
            )
        )
        or 0
    )


async def update_user(
    session: AsyncSession, *, account_id: UUID, user_id: UUID, changes: dict[str, Any], now: datetime
) -> None:
    await session.execute(
        sa.update(users).where(users.c.id == user_id, users.c.account_id == account_id)
        .values(**changes, updated_at=now)
    )


async def principal_state(
    session: AsyncSession, *, user_id: UUID, token_id: str
) -> tuple[bool, str, UUID, str | None] | None:
    """(is_active, role, account_id, why the token is denied or None) of a token's user; None: no such user."""
    denied = (
        sa.select(revoked_access_tokens.c.reason).where(revoked_access_tokens.c.jti == token_id).scalar_subquery()
    )
    row = (
        await session.execute(
            sa.select(users.c.is_active, users.c.role, users.c.account_id, denied.label("denied"))
            .where(users.c.id == user_id)
        )
    ).first()
    return None if row is None else (row.is_active, row.role, row.account_id, row.denied)


# ---- refresh tokens and revoked access tokens --------------------------------------------------------

async def insert_refresh_token(
    session: AsyncSession, *, token_hash: str, family_id: UUID, user_id: UUID, account_id: UUID,
    access_jti: str, access_expires_at: datetime, now: datetime, expires_at: datetime, token_id: UUID,
) -> None:
    await session.execute(
        sa.insert(refresh_tokens).values(
            id=token_id, token_hash=token_hash, family_id=family_id, user_id=user_id, account_id=account_id,
            access_jti=access_jti, access_expires_at=access_expires_at, issued_at=now, expires_at=expires_at,
        )
    )


async def refresh_token_for_update(session: AsyncSession, *, token_hash: str) -> dict[str, Any] | None:
    """The refresh token row, locked: two concurrent uses of one token are serialized (the second is reuse)."""
    row = (
        await session.execute(
            sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash).with_for_update()
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def mark_refresh_used(session: AsyncSession, *, token_id: UUID, now: datetime) -> None:
    await session.execute(sa.update(refresh_tokens).where(refresh_tokens.c.id == token_id).values(used_at=now))


async def family_of_access_token(session: AsyncSession, *, user_id: UUID, access_jti: str) -> UUID | None:
    return await session.scalar(
        sa.select(refresh_tokens.c.family_id).where(
            refresh_tokens.c.access_jti == access_jti, refresh_tokens.c.user_id == user_id
        )
    )


async def revoke_families(
    session: AsyncSession, *, now: datetime, family_ids: list[UUID] | None = None, user_id: UUID | None = None,
    reason: DenialReason = "revoked", keep_family: UUID | None = None,
) -> None:
    """Revoke the refresh tokens of some families (or of all a user's families but `keep_family`) and deny their
    live access tokens."""
    where = (
        refresh_tokens.c.family_id.in_(family_ids) if family_ids is not None else refresh_tokens.c.user_id == user_id
    )
    if keep_family is not None:
        where = sa.and_(where, refresh_tokens.c.family_id != keep_family)
    await session.execute(
        sa.update(refresh_tokens).where(where, refresh_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    await _deny_live_access_tokens(session, where=where, now=now, reason=reason)


async def deny_live_access_tokens(session: AsyncSession, *, user_id: UUID, now: datetime, reason: DenialReason) -> None:
    """Deny every access token of a user that has not expired yet (its refresh families stay usable)."""
    await _deny_live_access_tokens(session, where=refresh_tokens.c.user_id == user_id, now=now, reason=reason)


async def _deny_live_access_tokens(
    session: AsyncSession, *, where: sa.ColumnElement[bool], now: datetime, reason: DenialReason
) -> None:
    live = sa.select(
        refresh_tokens.c.access_jti, refresh_tokens.c.user_id, refresh_tokens.c.access_expires_at, sa.literal(reason)
    ).where(where, refresh_tokens.c.access_expires_at > now)
    # One statement for all of them (a user being deactivated may hold many).
    await session.execute(
        pg_insert(revoked_access_tokens)
        .from_select(["jti", "user_id", "expires_at", "reason"], live)
        .on_conflict_do_nothing(index_elements=["jti"])
    )


async def deny_access_token(session: AsyncSession, *, jti: str, user_id: UUID, expires_at: datetime) -> None:
    stmt = pg_insert(revoked_access_tokens).values(jti=jti, user_id=user_id, expires_at=expires_at)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["jti"]))


async def denials_after(session: AsyncSession, *, after: int, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Denied access tokens still unexpired, in feed order from `after` (exclusive)."""
    rows = await session.execute(
        sa.select(
            revoked_access_tokens.c.seq, revoked_access_tokens.c.jti, revoked_access_tokens.c.expires_at,
            revoked_access_tokens.c.reason,
        )
        .where(
            revoked_access_tokens.c.seq > after,
            revoked_access_tokens.c.expires_at > now,
            # Only rows of transactions older than every running one: none of those can still commit a smaller seq.
            revoked_access_tokens.c.txid < sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot()),
        )
        .order_by(revoked_access_tokens.c.seq)
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]


async def purge_expired(session: AsyncSession, *, now: datetime, attempts_before: datetime) -> None:
    """Housekeeping: denied access tokens past their expiry and refresh tokens past theirs can go."""
    await _delete_unlocked(session, revoked_access_tokens.c.jti, revoked_access_tokens.c.expires_at < now)
    await _delete_unlocked(session, refresh_tokens.c.id, refresh_tokens.c.expires_at < now)
    await _delete_unlocked(session, login_attempts.c.id, login_attempts.c.attempted_at < attempts_before)


async def _delete_unlocked(session: AsyncSession, key: sa.Column[Any], where: sa.ColumnElement[bool]) -> None:
    """Delete the matching rows that no other transaction holds; the ones it holds it is deleting itself.

    Concurrent logins all clear and purge overlapping sets of rows: plain DELETEs lock them in whatever order
    each finds them and deadlock. Skipping locked rows means these statements never wait on each other.
    """
    table = key.table
    held_elsewhere_skipped = sa.select(key).where(where).with_for_update(skip_locked=True)
    await session.execute(sa.delete(table).where(key.in_(held_elsewhere_skipped)))


# ---- login attempts ----------------------------------------------------------------------------------

async def record_attempts(session: AsyncSession, *, keys: list[tuple[str, str]], now: datetime) -> list[int]:
    result = await session.execute(
        sa.insert(login_attempts).returning(login_attempts.c.id),
        [{"scope": scope, "key": key, "attempted_at": now} for scope, key in keys],
    )
    return [int(i) for i in result.scalars()]


async def attempts_since(
    session: AsyncSession, *, scope: str, key: str, since: datetime, exclude: list[int]
) -> list[datetime]:
    """Times of the attempts (failures, and logins in flight) of one key in the window, oldest first."""
    rows = await session.execute(
        sa.select(login_attempts.c.attempted_at).where(
            login_attempts.c.scope == scope, login_attempts.c.key == key, login_attempts.c.attempted_at >= since,
            login_attempts.c.id.not_in(exclude),
        ).order_by(login_attempts.c.attempted_at)
    )
    return list(rows.scalars())


async def delete_attempts(session: AsyncSession, *, ids: list[int]) -> None:
    await session.execute(sa.delete(login_attempts).where(login_attempts.c.id.in_(ids)))


async def clear_failures(session: AsyncSession, *, scope: str, key: str) -> None:
    await _delete_unlocked(session, login_attempts.c.id, sa.and_(login_attempts.c.scope == scope,
                                                                  login_attempts.c.key == key))
