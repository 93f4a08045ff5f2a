"""The gateway's only SQL: its tables (accounts, users, refresh tokens, revoked access tokens, login attempts,
API keys) and one repository per subject over a unit of work's session."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain import (
    API_KEY_TOKEN_PREFIX,
    ApiKey,
    AttemptLimit,
    DenialReason,
    EmailTaken,
    KeyGrant,
    PrincipalState,
    RefreshToken,
    TokenDenial,
    User,
)
from rf_contracts.api.identity import AccountRead
from rfkit.db import page_of

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
        "reason IN ('revoked', 'user_deactivated', 'role_changed', 'api_key_revoked')",
        name="ck_revoked_access_tokens_reason",
    ),
    sa.Index("ix_revoked_access_tokens_expires", "expires_at"),
    sa.Index("uq_revoked_access_tokens_seq", "seq", unique=True),
)

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

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    # sha256 of the secret (gateway.security.api_key_hash); the secret itself is never stored.
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("created_by", sa.Uuid, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("role IN ('viewer', 'engineer', 'admin')", name="ck_api_keys_role"),
    sa.Index("uq_api_keys_secret_hash", "secret_hash", unique=True),
    sa.Index("ix_api_keys_account_created", "account_id", "created_at", "id"),
)

# How often a key's use is written down at most: a busy key must not turn every look-up into a row update.
LAST_USED_GRANULARITY = timedelta(minutes=1)


# The unique index a second user with a taken email runs into.
_EMAIL_INDEX = "uq_users_email"


def _violated_constraint(exc: IntegrityError) -> str | None:
    # asyncpg's own error (the cause of SQLAlchemy's wrapper) names the constraint.
    return getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)


def _user(row: Any) -> User | None:
    return None if row is None else User(**row._mapping)


class AccountRepository:
    """Accounts: the tenants."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, *, account_id: UUID, name: str, now: datetime) -> AccountRead:
        await self._session.execute(sa.insert(accounts).values(id=account_id, name=name, created_at=now))
        return AccountRead(id=account_id, name=name, created_at=now)

    async def get(self, *, account_id: UUID, lock: bool = False) -> AccountRead | None:
        """The account; `lock`: held until the transaction ends (serializes changes to its users)."""
        query = sa.select(accounts).where(accounts.c.id == account_id)
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else AccountRead(**row._mapping)


class UserRepository:
    """Users of an account. Emails are unique across all accounts (a login names no account)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, *, user: User) -> None:
        """Insert a user; EmailTaken when the email's unique index refuses it (a race the early check lost)."""
        try:
            # A savepoint: the refused insert must not poison the caller's transaction before it decides.
            async with self._session.begin_nested():
                await self._session.execute(sa.insert(users).values(**user.__dict__))
        except IntegrityError as exc:
            if _violated_constraint(exc) == _EMAIL_INDEX:
                raise EmailTaken() from exc
            raise

    async def email_taken_any_account(self, *, email: str) -> bool:
        """System-wide on purpose: an email belongs to one user of one account."""
        return bool(await self._session.scalar(sa.select(sa.exists().where(users.c.email == email))))

    async def by_email_any_account(self, *, email: str) -> User | None:
        """System-wide on purpose: a login gives an email, and the email decides the account."""
        return _user((await self._session.execute(sa.select(users).where(users.c.email == email))).first())

    async def get(self, *, account_id: UUID, user_id: UUID, lock: bool = False) -> User | None:
        query = sa.select(users).where(users.c.id == user_id, users.c.account_id == account_id)
        if lock:
            query = query.with_for_update()
        return _user((await self._session.execute(query)).first())

    async def page(self, *, account_id: UUID, limit: int, offset: int) -> tuple[list[User], int]:
        """A page of the account's users, oldest first, and how many it has in all."""
        rows, total = await page_of(
            self._session, users, [users.c.account_id == account_id],
            order_by=(users.c.created_at, users.c.id), limit=limit, offset=offset,
        )
        return [User(**r._mapping) for r in rows], total

    async def count_active_admins(self, *, account_id: UUID) -> int:
        return int(
            await self._session.scalar(
                sa.select(sa.func.count()).select_from(users).where(
                    users.c.account_id == account_id, users.c.role == "admin", users.c.is_active.is_(True)
                )
            )
            or 0
        )

    async def update(self, *, account_id: UUID, user_id: UUID, changes: dict[str, Any], now: datetime) -> None:
        await self._session.execute(
            sa.update(users).where(users.c.id == user_id, users.c.account_id == account_id)
            .values(**changes, updated_at=now)
        )

    async def principal_state_any_account(self, *, user_id: UUID, token_id: str) -> PrincipalState | None:
        """The token's user as it is now, and why the token is denied (if it is); None: no such user.

        System-wide on purpose: the caller compares the user's account with the token's (a mismatch is its own
        answer, not an unknown user).
        """
        denied = (
            sa.select(revoked_access_tokens.c.reason).where(revoked_access_tokens.c.jti == token_id).scalar_subquery()
        )
        row = (
            await self._session.execute(
                sa.select(users.c.is_active, users.c.role, users.c.account_id, denied.label("denied"))
                .where(users.c.id == user_id)
            )
        ).first()
        return None if row is None else PrincipalState(row.is_active, row.role, row.account_id, row.denied)


class TokenRepository:
    """Refresh tokens (their families) and denied access tokens (the feed the other services follow)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_refresh_token(
        self, *, token_id: UUID, token_hash: str, family_id: UUID, user_id: UUID, account_id: UUID,
        access_jti: str, access_expires_at: datetime, now: datetime, expires_at: datetime,
    ) -> None:
        await self._session.execute(
            sa.insert(refresh_tokens).values(
                id=token_id, token_hash=token_hash, family_id=family_id, user_id=user_id, account_id=account_id,
                access_jti=access_jti, access_expires_at=access_expires_at, issued_at=now, expires_at=expires_at,
            )
        )

    async def refresh_token_for_update_any_account(self, *, token_hash: str) -> RefreshToken | None:
        """The refresh token, locked: two concurrent uses of one token are serialized (the second is reuse).

        System-wide on purpose: the token (256 random bits) is the credential, and it names its account.
        """
        row = (
            await self._session.execute(
                sa.select(
                    refresh_tokens.c.id, refresh_tokens.c.family_id, refresh_tokens.c.user_id,
                    refresh_tokens.c.account_id, refresh_tokens.c.expires_at, refresh_tokens.c.used_at,
                    refresh_tokens.c.revoked_at,
                ).where(refresh_tokens.c.token_hash == token_hash).with_for_update()
            )
        ).first()
        return None if row is None else RefreshToken(**row._mapping)

    async def mark_used(self, *, account_id: UUID, token_id: UUID, now: datetime) -> None:
        await self._session.execute(
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.id == token_id, refresh_tokens.c.account_id == account_id)
            .values(used_at=now)
        )

    async def family_of_access_token(self, *, account_id: UUID, user_id: UUID, access_jti: str) -> UUID | None:
        return await self._session.scalar(
            sa.select(refresh_tokens.c.family_id).where(
                refresh_tokens.c.access_jti == access_jti, refresh_tokens.c.user_id == user_id,
                refresh_tokens.c.account_id == account_id,
            )
        )

    async def revoke_families(
        self, *, account_id: UUID, now: datetime, family_ids: list[UUID] | None = None, user_id: UUID | None = None,
        reason: DenialReason = "revoked", keep_family: UUID | None = None,
    ) -> None:
        """Revoke the refresh tokens of some families (or of all a user's families but `keep_family`) and deny
        their live access tokens."""
        where = sa.and_(
            refresh_tokens.c.account_id == account_id,
            refresh_tokens.c.family_id.in_(family_ids) if family_ids is not None
            else refresh_tokens.c.user_id == user_id,
        )
        if keep_family is not None:
            where = sa.and_(where, refresh_tokens.c.family_id != keep_family)
        await self._session.execute(
            sa.update(refresh_tokens).where(where, refresh_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        await self._deny_live_access_tokens(where=where, now=now, reason=reason)

    async def deny_live_access_tokens(
        self, *, account_id: UUID, user_id: UUID, now: datetime, reason: DenialReason
    ) -> None:
        """Deny every access token of a user that has not expired yet (its refresh families stay usable)."""
        where = sa.and_(refresh_tokens.c.account_id == account_id, refresh_tokens.c.user_id == user_id)
        await self._deny_live_access_tokens(where=where, now=now, reason=reason)

    async def _deny_live_access_tokens(
        self, *, where: sa.ColumnElement[bool], now: datetime, reason: DenialReason
    ) -> None:
        live = sa.select(
            refresh_tokens.c.access_jti, refresh_tokens.c.user_id, refresh_tokens.c.access_expires_at,
            sa.literal(reason),
        ).where(where, refresh_tokens.c.access_expires_at > now)
        # One statement for all of them (a user being deactivated may hold many).
        await self._session.execute(
            pg_insert(revoked_access_tokens)
            .from_select(["jti", "user_id", "expires_at", "reason"], live)
            .on_conflict_do_nothing(index_elements=["jti"])
        )

    async def deny_access_token(self, *, jti: str, user_id: UUID, expires_at: datetime) -> None:
        """Deny one access token by its id (ids are unique across accounts; the feed carries no account)."""
        stmt = pg_insert(revoked_access_tokens).values(jti=jti, user_id=user_id, expires_at=expires_at)
        await self._session.execute(stmt.on_conflict_do_nothing(index_elements=["jti"]))

    async def denials_after_any_account(self, *, after: int, now: datetime, limit: int) -> list[TokenDenial]:
        """The feed, system-wide on purpose (every service follows all of it): denied access tokens still
        unexpired, in feed order from `after` (exclusive)."""
        rows = await self._session.execute(
            sa.select(
                revoked_access_tokens.c.seq, revoked_access_tokens.c.jti, revoked_access_tokens.c.expires_at,
                revoked_access_tokens.c.reason,
            )
            .where(
                revoked_access_tokens.c.seq > after,
                revoked_access_tokens.c.expires_at > now,
                # Only rows of transactions older than every running one: none of those can still commit a
                # smaller seq.
                revoked_access_tokens.c.txid < sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot()),
            )
            .order_by(revoked_access_tokens.c.seq)
            .limit(limit)
        )
        return [TokenDenial(**row._mapping) for row in rows]

    async def purge_expired_any_account(self, *, now: datetime) -> None:
        """Housekeeping, system-wide: denied access tokens past their expiry and refresh tokens past theirs."""
        await _delete_unlocked(self._session, revoked_access_tokens.c.jti, revoked_access_tokens.c.expires_at < now)
        await _delete_unlocked(self._session, refresh_tokens.c.id, refresh_tokens.c.expires_at < now)


class ApiKeyRepository:
    """API keys of an account, and the system-wide look-ups of a presented key (its secret names its account)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, *, key: ApiKey) -> None:
        await self._session.execute(sa.insert(api_keys).values(**key.__dict__))

    async def get(self, *, account_id: UUID, key_id: UUID, lock: bool = False) -> ApiKey | None:
        query = sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.account_id == account_id)
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else ApiKey(**row._mapping)

    async def page(self, *, account_id: UUID, limit: int, offset: int) -> tuple[list[ApiKey], int]:
        """A page of the account's keys (revoked ones too), oldest first, and how many it has in all."""
        rows, total = await page_of(
            self._session, api_keys, [api_keys.c.account_id == account_id],
            order_by=(api_keys.c.created_at, api_keys.c.id), limit=limit, offset=offset,
        )
        return [ApiKey(**r._mapping) for r in rows], total

    async def revoke(self, *, account_id: UUID, key_id: UUID, now: datetime, deny_until: datetime) -> bool:
        """Revoke the key (False: it was revoked already, nothing changes) and deny every access token issued for
        it, through the feed the other services follow, until `deny_until` (when the last of them has expired)."""
        revoked = await self._session.scalar(
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now).returning(api_keys.c.id)
        )
        if revoked is None:
            return False
        await self._session.execute(
            pg_insert(revoked_access_tokens)
            .values(jti=f"{API_KEY_TOKEN_PREFIX}{key_id}", user_id=key_id, expires_at=deny_until,
                    reason="api_key_revoked")
            .on_conflict_do_nothing(index_elements=["jti"])
        )
        return True

    async def grant_by_secret_any_account(self, *, secret_hash: str, now: datetime) -> KeyGrant | None:
        """The grant of a valid key (not revoked, not expired) by its secret's hash, recording its use (at most once
        per LAST_USED_GRANULARITY); None for any other secret.

        System-wide on purpose: the secret (256 random bits) is the credential, and it names its account.
        """
        valid = sa.and_(
            api_keys.c.secret_hash == secret_hash, api_keys.c.revoked_at.is_(None),
            sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
        )
        row = (
            await self._session.execute(
                sa.select(api_keys.c.id, api_keys.c.account_id, api_keys.c.role, api_keys.c.expires_at,
                          api_keys.c.last_used_at).where(valid)
            )
        ).first()
        if row is None:
            return None
        if row.last_used_at is None or row.last_used_at <= now - LAST_USED_GRANULARITY:
            # Conditional again in SQL: of several gateways looking the key up at once, one writes.
            await self._session.execute(
                sa.update(api_keys).where(
                    api_keys.c.id == row.id,
                    sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at <= now - LAST_USED_GRANULARITY),
                ).values(last_used_at=now)
            )
        return KeyGrant(key_id=row.id, account_id=row.account_id, role=row.role, expires_at=row.expires_at)

    async def grant_by_id_any_account(self, *, key_id: UUID, now: datetime) -> KeyGrant | None:
        """The grant of a valid key by its id (the `sub` of its tokens); None: unknown, revoked or expired.

        System-wide on purpose: the caller compares the key's account with that of the token it checks.
        """
        row = (
            await self._session.execute(
                sa.select(api_keys.c.id, api_keys.c.account_id, api_keys.c.role, api_keys.c.expires_at).where(
                    api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None),
                    sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
                )
            )
        ).first()
        return None if row is None else KeyGrant(key_id=row.id, account_id=row.account_id, role=row.role,
                                                 expires_at=row.expires_at)


class AttemptRepository:
    """Throttled attempts (logins, registrations, password changes) by scope and key (an email, an address, a
    user id): no account's data, so no account scope."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, *, limits: list[AttemptLimit], now: datetime) -> list[int]:
        """One attempt under each limit's key; their ids."""
        result = await self._session.execute(
            sa.insert(login_attempts).returning(login_attempts.c.id),
            [{"scope": limit.scope, "key": limit.key, "attempted_at": now} for limit in limits],
        )
        return [int(i) for i in result.scalars()]

    async def times_since(self, *, scope: str, key: str, since: datetime, exclude: list[int]) -> list[datetime]:
        """Times of the attempts (failures, and attempts in flight) of one key in the window, oldest first."""
        rows = await self._session.execute(
            sa.select(login_attempts.c.attempted_at).where(
                login_attempts.c.scope == scope, login_attempts.c.key == key, login_attempts.c.attempted_at >= since,
                login_attempts.c.id.not_in(exclude),
            ).order_by(login_attempts.c.attempted_at)
        )
        return list(rows.scalars())

    async def withdraw(self, *, ids: list[int]) -> None:
        await self._session.execute(sa.delete(login_attempts).where(login_attempts.c.id.in_(ids)))

    async def clear(self, *, scope: str, key: str) -> None:
        """Forget a key's failures (a success, or an admin lifting a lockout)."""
        await _delete_unlocked(
            self._session, login_attempts.c.id, sa.and_(login_attempts.c.scope == scope, login_attempts.c.key == key)
        )

    async def purge_before(self, *, before: datetime) -> None:
        """Housekeeping: attempts too old to count against any limit."""
        await _delete_unlocked(self._session, login_attempts.c.id, login_attempts.c.attempted_at < before)


async def _delete_unlocked(session: AsyncSession, key: sa.Column[Any], where: sa.ColumnElement[bool]) -> None:
    """Delete the matching rows that no other transaction holds; the ones it holds it is deleting itself.

    Concurrent logins all clear and purge overlapping sets of rows: plain DELETEs lock them in whatever order
    each finds them and deadlock. Skipping locked rows means these statements never wait on each other.
    """
    table = key.table
    held_elsewhere_skipped = sa.select(key).where(where).with_for_update(skip_locked=True)
    await session.execute(sa.delete(table).where(key.in_(held_elsewhere_skipped)))
