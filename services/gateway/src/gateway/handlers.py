"""Identity use cases: register, log in, refresh, log out, manage users, and the per-request token check."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from gateway import repository as repo
from gateway.domain import (
    BAD_CREDENTIALS,
    AuthenticationFailed,
    RegistrationClosed,
    TooManyAttempts,
    WrongPassword,
    check_admin_remains,
    retry_after,
)
from gateway.security import Passwords, TokenIssuer, new_refresh_token, refresh_token_hash
from gateway.settings import Settings
from rf_contracts.api.identity import (
    PasswordChange,
    PasswordReset,
    RegisterRequest,
    TokenPair,
    UserCreate,
    UserUpdate,
)
from rfkit.auth import Principal
from rfkit.db import Database, UnitOfWork
from rfkit.denials import DENIAL_DETAIL
from rfkit.errors import Conflict, NotFound


def _now() -> datetime:
    return datetime.now(UTC)


class PrincipalCache:
    """Per-process memory of tokens found valid, for at most `ttl_s`; bounds how stale a revocation can be."""

    def __init__(self, ttl_s: float, max_entries: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._valid_until: dict[str, float] = {}
        self.generation = 0

    def is_fresh(self, token_id: str) -> bool:
        until = self._valid_until.get(token_id)
        return until is not None and until > time.monotonic()

    def remember(self, token_id: str, generation: int) -> None:
        """Remember a token found valid by a check that began at `generation` (unless cleared since)."""
        if self.ttl_s <= 0 or generation != self.generation:
            return
        if len(self._valid_until) >= self.max_entries:
            self._valid_until.clear()
        self._valid_until[token_id] = time.monotonic() + self.ttl_s

    def clear(self) -> None:
        """Forget everything (after a revocation); a check already under way then remembers nothing either."""
        self.generation += 1
        self._valid_until.clear()


@dataclass
class Identity:
    """What the identity use cases need: the database, password hashing, token signing, the settings."""

    db: Database
    passwords: Passwords
    tokens: TokenIssuer
    settings: Settings
    cache: PrincipalCache = field(init=False)
    inflight: dict[tuple[str, int], asyncio.Future[tuple[bool, str, UUID, str | None] | None]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.cache = PrincipalCache(self.settings.principal_cache_ttl_s)


# ---- the check every authenticated request goes through ----------------------------------------------

async def check_principal(ctx: Identity, principal: Principal) -> None:
    """The token's user still exists, is active, has the token's role and account; the token is not revoked."""
    if ctx.cache.is_fresh(principal.token_id):
        return
    generation = ctx.cache.generation
    # Concurrent requests with one token share one query (when the cached answer expires they all miss at once).
    # A query begun before a revocation (an older generation) is not joined.
    key = (principal.token_id, generation)
    query = ctx.inflight.get(key)
    if query is None:
        query = asyncio.ensure_future(_principal_state(ctx, principal))
        ctx.inflight[key] = query
        query.add_done_callback(lambda _: ctx.inflight.pop(key, None))
    # Shielded: one caller giving up (a client disconnect) must not cancel the query the others wait for.
    state = await asyncio.shield(query)
    if state is None:
        raise AuthenticationFailed("invalid token: unknown user")
    is_active, role, account_id, denied = state
    if denied is not None:
        raise AuthenticationFailed(f"invalid token: {DENIAL_DETAIL[denied]}")
    if not is_active:
        raise AuthenticationFailed("invalid token: user deactivated")
    if account_id != principal.account_id:
        raise AuthenticationFailed("invalid token: account mismatch")
    if role != principal.role:
        # A changed role takes effect now, not when the token expires: the client refreshes to get it.
        raise AuthenticationFailed("invalid token: role changed, refresh the token")
    ctx.cache.remember(principal.token_id, generation)


async def _principal_state(ctx: Identity, principal: Principal) -> tuple[bool, str, UUID, str | None] | None:
    async with ctx.db.read() as session:
        return await repo.principal_state(session, user_id=principal.user_id, token_id=principal.token_id)


# ---- throttling (registrations per address, login failures per email and per address) ----------------

async def _admit(
    ctx: Identity, limits: list[tuple[str, str, int]], *, window: timedelta, now: datetime, detail: str | None = None
) -> list[int]:
    """Record this attempt under each (scope, key, limit), committed before anything is checked so that
    concurrent attempts count against each other; 429 when a key has had `limit` attempts in the window.

    Returns the attempt's ids. A refused attempt is withdrawn: it must not push the lockout further out.
    """
    async with ctx.db.unit_of_work() as uow:
        mine = await repo.record_attempts(uow.session, keys=[(scope, key) for scope, key, _ in limits], now=now)
    waits = []
    async with ctx.db.read() as session:
        for scope, key, limit in limits:
            earlier = await repo.attempts_since(session, scope=scope, key=key, since=now - window, exclude=mine)
            wait = retry_after(earlier, limit=limit, window=window, now=now)
            if wait is not None:
                waits.append(wait)
    if waits:
        async with ctx.db.unit_of_work() as uow:
            await repo.delete_attempts(uow.session, ids=mine)
        raise TooManyAttempts(max(waits)) if detail is None else TooManyAttempts(max(waits), detail)
    return mine


# ---- new users (registration, and admins adding users) -----------------------------------------------

EMAIL_TAKEN = "a user with this email already exists"


async def _hash_for_new_user(ctx: Identity, *, email: str, password: str) -> str:
    """The new user's password hash, after a cheap early 409 for a taken email (spares the hash's CPU)."""
    async with ctx.db.read() as session:
        if await repo.email_taken(session, email=email):
            raise Conflict(EMAIL_TAKEN)
    return await ctx.passwords.hash(password)


@asynccontextmanager
async def _new_user(ctx: Identity) -> AsyncIterator[UnitOfWork]:
    """The transaction that inserts a user: the unique index on email decides a race the early check lost."""
    try:
        async with ctx.db.unit_of_work() as uow:
            yield uow
    except IntegrityError as exc:
        raise Conflict(EMAIL_TAKEN) from exc


# ---- accounts and sessions ---------------------------------------------------------------------------

async def register(ctx: Identity, cmd: RegisterRequest, *, address: str) -> dict[str, Any]:
    """A new account and its first user, an admin. Throttled per client address (each costs a password hash)."""
    if ctx.settings.registration == "closed":
        raise RegistrationClosed()
    now = _now()
    await _admit(
        ctx, [("register", address, ctx.settings.register_max_per_address)],
        window=timedelta(seconds=ctx.settings.register_window_s), now=now,
        detail="too many registrations from this address; try again later",
    )
    password_hash = await _hash_for_new_user(ctx, email=cmd.email, password=cmd.password)
    async with _new_user(ctx) as uow:
        account = await repo.insert_account(uow.session, account_id=uuid.uuid4(), name=cmd.account_name, now=now)
        user = await repo.insert_user(
            uow.session, user_id=uuid.uuid4(), account_id=account["id"], email=cmd.email,
            full_name=cmd.full_name, password_hash=password_hash, role="admin", now=now,
        )
    return {"user": user.public(), "account": account}


async def login(ctx: Identity, *, email: str, password: str, address: str) -> TokenPair:
    """Credentials -> a new token pair (a new refresh family). Throttled per email and per client address."""
    s = ctx.settings
    window = timedelta(seconds=s.login_failure_window_s)
    now = _now()
    # Recorded before the password is checked (concurrent guesses count against each other); a successful
    # login removes it again.
    mine = await _admit(
        ctx, [("email", email, s.login_max_failures_per_email), ("address", address, s.login_max_failures_per_address)],
        window=window, now=now,
    )
    async with ctx.db.read() as session:
        user = await repo.user_by_email(session, email=email)
    valid, new_hash = await ctx.passwords.verify(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        raise AuthenticationFailed(BAD_CREDENTIALS)

    async with ctx.db.unit_of_work() as uow:
        await repo.delete_attempts(uow.session, ids=mine)
        await repo.clear_failures(uow.session, scope="email", key=email)
        if new_hash:
            await repo.update_user(uow.session, account_id=user.account_id, user_id=user.id,
                                   changes={"password_hash": new_hash}, now=now)
        await repo.purge_expired(
            uow.session, now=now, attempts_before=now - max(window, timedelta(seconds=s.register_window_s))
        )
        return await _issue_pair(ctx, uow.session, user=user, family_id=uuid.uuid4(), now=now)


async def refresh(ctx: Identity, *, token: str) -> TokenPair:
    """Rotate: the presented refresh token is spent and a new pair of the same family is returned.

    A token presented a second time means it leaked (or the client raced itself): the whole family is revoked.
    """
    now = _now()
    reused = False
    async with ctx.db.unit_of_work() as uow:
        row = await repo.refresh_token_for_update(uow.session, token_hash=refresh_token_hash(token))
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
            raise AuthenticationFailed("invalid refresh token")
        if row["used_at"] is not None:
            await repo.revoke_families(uow.session, family_ids=[row["family_id"]], now=now)
            reused = True
        else:
            user = await repo.get_user(uow.session, account_id=row["account_id"], user_id=row["user_id"])
            if user is None or not user.is_active:
                raise AuthenticationFailed("invalid refresh token")
            await repo.mark_refresh_used(uow.session, token_id=row["id"], now=now)
            pair = await _issue_pair(ctx, uow.session, user=user, family_id=row["family_id"], now=now)
    if reused:
        # Raised after the commit: the revocation must stick although the request fails.
        ctx.cache.clear()
        raise AuthenticationFailed("refresh token reuse detected; its session is revoked")
    return pair


async def logout(ctx: Identity, principal: Principal, *, refresh_token: str | None) -> None:
    """Revoke the current access token and its refresh family (and the family of `refresh_token`, if given)."""
    now = _now()
    async with ctx.db.unit_of_work() as uow:
        families = []
        family = await repo.family_of_access_token(uow.session, user_id=principal.user_id,
                                                   access_jti=principal.token_id)
        if family is not None:
            families.append(family)
        if refresh_token:
            row = await repo.refresh_token_for_update(uow.session, token_hash=refresh_token_hash(refresh_token))
            # Only the caller's own token: a logout must not be a way to end someone else's session.
            if row is not None and row["user_id"] == principal.user_id:
                families.append(row["family_id"])
        # Refresh tokens first, denials after: the order every revocation takes (a password reset too), so that a
        # logout racing a reset of the same user waits for it instead of deadlocking (a 500 schemathesis found).
        if families:
            await repo.revoke_families(uow.session, family_ids=families, now=now)
        await repo.deny_access_token(
            uow.session, jti=principal.token_id, user_id=principal.user_id,
            expires_at=datetime.fromtimestamp(principal.expires_at, UTC),
        )
    ctx.cache.clear()


async def me(ctx: Identity, principal: Principal) -> dict[str, Any]:
    async with ctx.db.read() as session:
        user = await repo.get_user(session, account_id=principal.account_id, user_id=principal.user_id)
        account = await repo.get_account(session, account_id=principal.account_id)
    if user is None or account is None:
        raise NotFound("user not found")
    return {"id": user.id, "email": user.email, "full_name": user.full_name, "role": user.role,
            "account_id": user.account_id, "account_name": account["name"]}


# ---- passwords ---------------------------------------------------------------------------------------

async def change_password(ctx: Identity, principal: Principal, cmd: PasswordChange) -> None:
    """The caller's own new password, confirmed with the current one. The caller's other sessions end (their
    refresh families are revoked and their live access tokens denied); the session making the change goes on.

    Wrong current passwords are throttled like failed logins (per user): a stolen access token must not be a way
    to guess the password.
    """
    s = ctx.settings
    now = _now()
    mine = await _admit(
        ctx, [("password", str(principal.user_id), s.login_max_failures_per_email)],
        window=timedelta(seconds=s.login_failure_window_s), now=now,
        detail="too many wrong passwords; try again later",
    )
    async with ctx.db.read() as session:
        user = await repo.get_user(session, account_id=principal.account_id, user_id=principal.user_id)
    if user is None:
        raise AuthenticationFailed("invalid token: unknown user")
    valid, _ = await ctx.passwords.verify(cmd.current_password, user.password_hash)
    if not valid:
        raise WrongPassword()
    password_hash = await ctx.passwords.hash(cmd.new_password)
    async with ctx.db.unit_of_work() as uow:
        await repo.delete_attempts(uow.session, ids=mine)
        await repo.clear_failures(uow.session, scope="password", key=str(principal.user_id))
        await repo.update_user(uow.session, account_id=principal.account_id, user_id=principal.user_id,
                               changes={"password_hash": password_hash}, now=now)
        current = await repo.family_of_access_token(uow.session, user_id=principal.user_id,
                                                    access_jti=principal.token_id)
        if current is None:
            # No family to keep (it has been purged): the current access token is denied with all the others.
            await repo.deny_access_token(uow.session, jti=principal.token_id, user_id=principal.user_id,
                                         expires_at=datetime.fromtimestamp(principal.expires_at, UTC))
        await repo.revoke_families(uow.session, user_id=principal.user_id, keep_family=current, now=now)
    ctx.cache.clear()


async def reset_password(ctx: Identity, principal: Principal, *, user_id: UUID, cmd: PasswordReset) -> None:
    """An admin sets a user's password: every session of that user ends (refresh families revoked, live access
    tokens denied), so the user signs in again with the new one. Their login lockout, if any, is lifted."""
    password_hash = await ctx.passwords.hash(cmd.new_password)
    now = _now()
    async with ctx.db.unit_of_work() as uow:
        target = await repo.get_user(uow.session, account_id=principal.account_id, user_id=user_id, lock=True)
        if target is None:
            raise NotFound("user not found")
        await repo.update_user(uow.session, account_id=principal.account_id, user_id=user_id,
                               changes={"password_hash": password_hash}, now=now)
        await repo.revoke_families(uow.session, user_id=user_id, now=now, reason="revoked")
        await repo.clear_failures(uow.session, scope="email", key=target.email)
    ctx.cache.clear()


# ---- users of an account (admin) ---------------------------------------------------------------------

async def list_users(ctx: Identity, principal: Principal, *, limit: int, offset: int) -> dict[str, Any]:
    async with ctx.db.read() as session:
        rows, total = await repo.list_users(session, account_id=principal.account_id, limit=limit, offset=offset)
    return {"items": [r.public() for r in rows], "total": total, "limit": limit, "offset": offset}


async def create_user(ctx: Identity, principal: Principal, cmd: UserCreate) -> dict[str, Any]:
    password_hash = await _hash_for_new_user(ctx, email=cmd.email, password=cmd.password)
    async with _new_user(ctx) as uow:
        user = await repo.insert_user(
            uow.session, user_id=uuid.uuid4(), account_id=principal.account_id, email=cmd.email,
            full_name=cmd.full_name, password_hash=password_hash, role=cmd.role, now=_now(),
        )
    return user.public()


async def update_user(ctx: Identity, principal: Principal, *, user_id: UUID, cmd: UserUpdate) -> dict[str, Any]:
    """Change role, active flag or name. Deactivating ends the user's sessions at once."""
    now = _now()
    async with ctx.db.unit_of_work() as uow:
        # Locking the account serializes changes to its users: two admins demoting each other at the same
        # time cannot both pass the "an active admin remains" check.
        if await repo.get_account(uow.session, account_id=principal.account_id, lock=True) is None:
            raise NotFound("user not found")
        target = await repo.get_user(uow.session, account_id=principal.account_id, user_id=user_id, lock=True)
        if target is None:
            raise NotFound("user not found")
        changes = cmd.model_dump(exclude_none=True)
        new_role = changes.get("role", target.role)
        new_active = changes.get("is_active", target.is_active)
        check_admin_remains(
            target_role=target.role, target_active=target.is_active, new_role=new_role, new_active=new_active,
            active_admins=await repo.count_active_admins(uow.session, account_id=principal.account_id),
        )
        if changes:
            await repo.update_user(uow.session, account_id=principal.account_id, user_id=user_id,
                                   changes=changes, now=now)
        if target.is_active and not new_active:
            await repo.revoke_families(uow.session, user_id=user_id, now=now, reason="user_deactivated")
        elif new_role != target.role:
            # The other services learn of it from the denial feed: the user's live tokens carry the old role.
            await repo.deny_live_access_tokens(uow.session, user_id=user_id, now=now, reason="role_changed")
        updated = await repo.get_user(uow.session, account_id=principal.account_id, user_id=user_id)
    ctx.cache.clear()
    assert updated is not None
    return updated.public()


# ---- the token-denial feed the other services follow ---------------------------------------------------

async def token_denials(ctx: Identity, *, after: int, limit: int) -> dict[str, Any]:
    async with ctx.db.read() as session:
        rows = await repo.denials_after(session, after=after, now=_now(), limit=limit)
    return {"denials": [{**row, "expires_at": row["expires_at"].isoformat()} for row in rows]}


# ---- helpers -----------------------------------------------------------------------------------------

async def _issue_pair(ctx: Identity, session: Any, *, user: repo.UserRow, family_id: UUID, now: datetime) -> TokenPair:
    access = ctx.tokens.access(user_id=user.id, account_id=user.account_id, role=user.role)  # type: ignore[arg-type]
    refresh_token = new_refresh_token()
    await repo.insert_refresh_token(
        session, token_id=uuid.uuid4(), token_hash=refresh_token_hash(refresh_token), family_id=family_id,
        user_id=user.id, account_id=user.account_id, access_jti=access.token_id,
        access_expires_at=now + timedelta(seconds=access.ttl_s + 60), now=now,
        expires_at=now + timedelta(seconds=ctx.settings.refresh_token_ttl_s),
    )
    return TokenPair(access_token=access.token, refresh_token=refresh_token, expires_in=access.ttl_s)
