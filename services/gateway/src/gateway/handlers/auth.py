"""Sign-in use cases: register an account, log in, refresh, log out, who am I, change one's own password."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from gateway.domain import (
    AttemptLimit,
    BadCredentials,
    IdentityPolicy,
    InvalidRefreshToken,
    RefreshTokenReused,
    RegistrationClosed,
    TokenRejected,
    TooManyAttempts,
    User,
    UserNotFound,
    WrongPassword,
    public_fields,
)
from gateway.handlers.throttle import admit
from gateway.handlers.users import password_hash_for_new_user
from gateway.principals import PrincipalCache
from gateway.security import Passwords, TokenIssuer, new_refresh_token, refresh_token_hash
from gateway.uow import GatewayUnitOfWork
from rf_contracts.api.identity import MeRead, RegisterResponse, TokenPair, UserRead
from rfkit.clock import utcnow
from rfkit.db import Database


@dataclass(frozen=True)
class Register:
    email: str
    password: str
    full_name: str
    account_name: str
    address: str  # the client's address: registrations are throttled per address


@dataclass(frozen=True)
class LogIn:
    email: str
    password: str
    address: str


@dataclass(frozen=True)
class Refresh:
    refresh_token: str


@dataclass(frozen=True)
class LogOut:
    account_id: UUID
    user_id: UUID
    token_id: str  # the access token the caller used
    token_expires_at: datetime
    refresh_token: str | None  # also end this refresh token's family (when it is the caller's)


@dataclass(frozen=True)
class ChangePassword:
    account_id: UUID
    user_id: UUID
    token_id: str
    token_expires_at: datetime
    current_password: str
    new_password: str


async def register(cmd: Register, *, db: Database, passwords: Passwords, policy: IdentityPolicy) -> RegisterResponse:
    """A new account and its first user, an admin. Throttled per client address (each costs a password hash)."""
    if not policy.registration_open:
        raise RegistrationClosed()
    now = utcnow()
    await admit(
        [AttemptLimit("register", cmd.address, policy.register_max_per_address)],
        window=policy.register_window, now=now, db=db,
        refuse=lambda wait: TooManyAttempts(
            wait, "too many registrations from this address; try again later", code="too_many_registrations"
        ),
    )
    password_hash = await password_hash_for_new_user(email=cmd.email, password=cmd.password, db=db,
                                                     passwords=passwords)
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        account = await uow.accounts.add(account_id=uuid.uuid4(), name=cmd.account_name, now=now)
        user = User(id=uuid.uuid4(), account_id=account.id, email=cmd.email, full_name=cmd.full_name,
                    password_hash=password_hash, role="admin", is_active=True, created_at=now, updated_at=now)
        # EmailTaken here (a race the early check lost) rolls the account back too.
        await uow.users.add(user=user)
    return RegisterResponse(user=UserRead.model_validate(public_fields(user)), account=account)


async def login(
    cmd: LogIn, *, db: Database, passwords: Passwords, tokens: TokenIssuer, policy: IdentityPolicy
) -> TokenPair:
    """Credentials -> a new token pair (a new refresh family). Throttled per email and per client address."""
    now = utcnow()
    # Recorded (and committed) before the password is checked, so that concurrent guesses count against each
    # other and a failure stays counted; a successful login withdraws it again.
    mine = await admit(
        [AttemptLimit("email", cmd.email, policy.login_max_failures_per_email),
         AttemptLimit("address", cmd.address, policy.login_max_failures_per_address)],
        window=policy.login_failure_window, now=now, db=db,
    )
    # The password is checked between two transactions: argon2 takes tens of milliseconds, during which no
    # pooled connection is held (a flood of logins must not drain the pool).
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        user = await uow.users.by_email_any_account(email=cmd.email)
    valid, new_hash = await passwords.verify(cmd.password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        raise BadCredentials()

    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        await uow.attempts.withdraw(ids=mine)
        await uow.attempts.clear(scope="email", key=cmd.email)
        if new_hash:
            await uow.users.update(account_id=user.account_id, user_id=user.id,
                                   changes={"password_hash": new_hash}, now=now)
        await uow.tokens.purge_expired_any_account(now=now)
        await uow.attempts.purge_before(before=now - policy.attempts_kept)
        return await _issue_pair(uow, user=user, family_id=uuid.uuid4(), now=now, tokens=tokens, policy=policy)


async def refresh(
    cmd: Refresh, *, db: Database, tokens: TokenIssuer, policy: IdentityPolicy, principals: PrincipalCache
) -> TokenPair:
    """Rotate: the presented refresh token is spent and a new pair of the same family is returned.

    A token presented a second time means it leaked (or the client raced itself): the whole family is revoked.
    """
    now = utcnow()
    reused = False
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        token = await uow.tokens.refresh_token_for_update_any_account(token_hash=refresh_token_hash(cmd.refresh_token))
        if token is None or not token.usable(now):
            raise InvalidRefreshToken()
        if token.used_at is not None:
            await uow.tokens.revoke_families(account_id=token.account_id, family_ids=[token.family_id], now=now)
            reused = True
        else:
            user = await uow.users.get(account_id=token.account_id, user_id=token.user_id)
            if user is None or not user.is_active:
                raise InvalidRefreshToken()
            await uow.tokens.mark_used(account_id=token.account_id, token_id=token.id, now=now)
            pair = await _issue_pair(uow, user=user, family_id=token.family_id, now=now, tokens=tokens, policy=policy)
    if reused:
        # Raised after the commit: the revocation must stick although the request fails.
        principals.clear()
        raise RefreshTokenReused()
    return pair


async def logout(cmd: LogOut, *, db: Database, principals: PrincipalCache) -> None:
    """Revoke the current access token and its refresh family (and the family of `refresh_token`, if given)."""
    now = utcnow()
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        families = []
        family = await uow.tokens.family_of_access_token(account_id=cmd.account_id, user_id=cmd.user_id,
                                                          access_jti=cmd.token_id)
        if family is not None:
            families.append(family)
        if cmd.refresh_token:
            token = await uow.tokens.refresh_token_for_update_any_account(
                token_hash=refresh_token_hash(cmd.refresh_token)
            )
            # Only the caller's own token: a logout must not be a way to end someone else's session.
            if token is not None and token.user_id == cmd.user_id:
                families.append(token.family_id)
        # Refresh tokens first, denials after: the order every revocation takes (a password reset too), so that a
        # logout racing a reset of the same user waits for it instead of deadlocking (a 500 schemathesis found).
        if families:
            await uow.tokens.revoke_families(account_id=cmd.account_id, family_ids=families, now=now)
        await uow.tokens.deny_access_token(jti=cmd.token_id, user_id=cmd.user_id, expires_at=cmd.token_expires_at)
    principals.clear()


async def me(*, account_id: UUID, user_id: UUID, db: Database) -> MeRead:
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        user = await uow.users.get(account_id=account_id, user_id=user_id)
        account = await uow.accounts.get(account_id=account_id)
    if user is None or account is None:
        raise UserNotFound()
    return MeRead(id=user.id, email=user.email, full_name=user.full_name, role=user.role,
                  account_id=user.account_id, account_name=account.name)


async def change_password(
    cmd: ChangePassword, *, db: Database, passwords: Passwords, policy: IdentityPolicy, principals: PrincipalCache
) -> None:
    """The caller's own new password, confirmed with the current one. The caller's other sessions end (their
    refresh families are revoked and their live access tokens denied); the session making the change goes on.

    Wrong current passwords are throttled like failed logins (per user): a stolen access token must not be a way
    to guess the password.
    """
    now = utcnow()
    # As for a login: the attempt is committed before the check and stays when the check fails.
    mine = await admit(
        [AttemptLimit("password", str(cmd.user_id), policy.login_max_failures_per_email)],
        window=policy.login_failure_window, now=now, db=db,
        refuse=lambda wait: TooManyAttempts(
            wait, "too many wrong passwords; try again later", code="too_many_wrong_passwords"
        ),
    )
    # Verified and hashed outside any transaction (argon2's time holds no pooled connection).
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        user = await uow.users.get(account_id=cmd.account_id, user_id=cmd.user_id)
    if user is None:
        raise TokenRejected("unknown user")
    valid, _ = await passwords.verify(cmd.current_password, user.password_hash)
    if not valid:
        raise WrongPassword()
    password_hash = await passwords.hash(cmd.new_password)
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        await uow.attempts.withdraw(ids=mine)
        await uow.attempts.clear(scope="password", key=str(cmd.user_id))
        await uow.users.update(account_id=cmd.account_id, user_id=cmd.user_id,
                               changes={"password_hash": password_hash}, now=now)
        current = await uow.tokens.family_of_access_token(account_id=cmd.account_id, user_id=cmd.user_id,
                                                           access_jti=cmd.token_id)
        if current is None:
            # No family to keep (it has been purged): the current access token is denied with all the others.
            await uow.tokens.deny_access_token(jti=cmd.token_id, user_id=cmd.user_id,
                                               expires_at=cmd.token_expires_at)
        await uow.tokens.revoke_families(account_id=cmd.account_id, user_id=cmd.user_id, keep_family=current,
                                         now=now)
    principals.clear()


async def _issue_pair(
    uow: GatewayUnitOfWork, *, user: User, family_id: UUID, now: datetime, tokens: TokenIssuer,
    policy: IdentityPolicy,
) -> TokenPair:
    access = tokens.access(user_id=user.id, account_id=user.account_id, role=user.role)
    refresh_token = new_refresh_token()
    await uow.tokens.add_refresh_token(
        token_id=uuid.uuid4(), token_hash=refresh_token_hash(refresh_token), family_id=family_id,
        user_id=user.id, account_id=user.account_id, access_jti=access.token_id,
        access_expires_at=now + timedelta(seconds=access.ttl_s + 60), now=now,
        expires_at=now + policy.refresh_token_ttl,
    )
    return TokenPair(access_token=access.token, refresh_token=refresh_token, expires_in=access.ttl_s)
