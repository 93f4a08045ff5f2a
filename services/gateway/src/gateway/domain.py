"""Identity in plain Python: users, accounts and tokens, the rules on them, and the errors they raise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from rfkit.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, Unauthenticated

# One answer for every credential failure: it never tells whether the email exists.
BAD_CREDENTIALS = "incorrect email or password"
EMAIL_TAKEN = "a user with this email already exists"

Role = Literal["viewer", "engineer", "admin"]
# Why an access token was put on the denial feed (the feed's and the table's vocabulary).
DenialReason = Literal["revoked", "user_deactivated", "role_changed", "api_key_revoked"]
# Every access token the gateway issues for an API key has this `jti` prefix (then the key's id).
API_KEY_TOKEN_PREFIX = "apikey-"


# ---- entities ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    id: UUID
    account_id: UUID
    email: str
    full_name: str
    password_hash: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RefreshToken:
    """A stored refresh token (its hash only); tokens issued from one login form a family."""

    id: UUID
    family_id: UUID
    user_id: UUID
    account_id: UUID
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired (a used one is usable only as evidence of reuse)."""
        return self.revoked_at is None and self.expires_at > now


@dataclass(frozen=True)
class ApiKey:
    """A machine client's credential in an account: only the secret's hash and first characters are kept."""

    id: UUID
    account_id: UUID
    name: str
    role: Role
    prefix: str
    secret_hash: str
    created_by: UUID
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class KeyGrant:
    """A valid API key (not revoked, not expired): whom its requests act as, and until when."""

    key_id: UUID
    account_id: UUID
    role: Role
    expires_at: datetime | None


# The fields holding the hash of a secret (a password, an API key's): stored and compared, never shown.
SECRET_HASHES = frozenset({"password_hash", "secret_hash"})


def public_fields(record: User | ApiKey) -> dict[str, Any]:
    """A user or an API key as the API shows it: every field but its secret's hash."""
    return {k: v for k, v in record.__dict__.items() if k not in SECRET_HASHES}


def is_api_key_token(token_id: str) -> bool:
    """Whether an access token was issued for an API key (its `jti`), rather than for a person's login."""
    return token_id.startswith(API_KEY_TOKEN_PREFIX)


@dataclass(frozen=True)
class PrincipalState:
    """What a token's user is now, to compare with what the token says."""

    is_active: bool
    role: str
    account_id: UUID
    denied: DenialReason | None  # why the token itself is denied; None: it is not


@dataclass(frozen=True)
class TokenDenial:
    """One entry of the token-denial feed the other services follow."""

    seq: int
    jti: str
    expires_at: datetime
    reason: DenialReason


@dataclass(frozen=True)
class IdentityPolicy:
    """The deployment's identity rules (from the settings): registration, throttling, refresh-token lifetime."""

    registration_open: bool
    register_max_per_address: int
    register_window: timedelta
    login_max_failures_per_email: int
    login_max_failures_per_address: int
    login_failure_window: timedelta
    refresh_token_ttl: timedelta

    @property
    def attempts_kept(self) -> timedelta:
        """How long a recorded attempt can still count against a limit (older ones are purged)."""
        return max(self.login_failure_window, self.register_window)


@dataclass(frozen=True)
class AttemptLimit:
    """At most `limit` attempts of `key` (in `scope`: "email", "address", "register", "password") per window."""

    scope: str
    key: str
    limit: int


# ---- errors ------------------------------------------------------------------------------------------

class AuthenticationFailed(Unauthenticated, code="authentication_failed"):
    """Bad credentials, or a token that is unknown, used, revoked or expired."""


class BadCredentials(AuthenticationFailed, code="bad_credentials", detail=BAD_CREDENTIALS):
    """Wrong email or password, or an inactive user: one answer for all (it tells nothing about the email)."""


class InvalidRefreshToken(AuthenticationFailed, code="invalid_refresh_token", detail="invalid refresh token"):
    """A refresh token that is unknown, revoked or expired, or whose user is gone or inactive."""


class RefreshTokenReused(
    AuthenticationFailed, code="refresh_token_reused", detail="refresh token reuse detected; its session is revoked"
):
    """A refresh token presented a second time: its whole family has been revoked."""


class TokenRejected(AuthenticationFailed, code="invalid_token"):
    """A well-signed access token that no longer stands (user gone or deactivated, role changed, revoked).

    The code is RFC 6750's name for it; the detail says which case.
    """

    def __init__(self, why: str) -> None:
        super().__init__(f"invalid token: {why}")


class RegistrationClosed(
    Forbidden,
    code="registration_closed",
    detail="registration is closed on this deployment; ask an administrator to add you",
):
    """403: this deployment does not let anyone create an account (RF_REGISTRATION=closed); admins add users."""


class WrongPassword(Forbidden, code="wrong_password", detail="the current password is incorrect"):
    """403 on a password change whose current password is wrong.

    Not 401: the caller's token is valid, and clients take a 401 to mean "sign in again".
    """


class TooManyAttempts(RateLimited, code="too_many_login_attempts"):
    """Too many failed logins (or registrations, or wrong passwords); `retry_after_s` says when the next attempt
    can succeed. Each throttled case has its own code."""

    def __init__(
        self, retry_after_s: int, detail: str = "too many failed login attempts; try again later", *,
        code: str | None = None,
    ) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, code=code)


class EmailTaken(Conflict, code="email_taken", detail=EMAIL_TAKEN):
    """Emails are unique across all accounts (they sign in without naming an account)."""


class LastActiveAdmin(
    Conflict, code="last_active_admin", detail="the account's last active admin cannot be demoted or deactivated"
):
    """The change would leave the account without an active admin."""


class UserNotFound(NotFound, code="user_not_found", detail="user not found"):
    """No such user in the caller's account (another account's user is not told apart)."""


class ApiKeyNotFound(NotFound, code="api_key_not_found", detail="API key not found"):
    """No such API key in the caller's account (another account's key is not told apart)."""


class ApiKeyExpiryInPast(Invalid, code="api_key_expiry_in_past", detail="expires_at must be in the future"):
    """422: a new key's `expires_at` must lie in the future (a key born expired would be useless)."""


class ApiKeyNotAllowed(
    Forbidden, code="api_key_not_allowed", detail="this route is for people signed in with a password, not for API keys"
):
    """403: a route meant for a person (their profile, password, logout, managing API keys) called with an API key.

    Keys cannot manage keys: a leaked admin key must not be a way to mint keys that outlive its revocation.
    """


# ---- rules -------------------------------------------------------------------------------------------

def retry_after(attempts: list[datetime], *, limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds to wait before one more attempt fits under `limit` within `window`; None when it fits now.

    `attempts` are the earlier attempts of the key inside the window, oldest first.
    """
    if len(attempts) < limit:
        return None
    # The attempt that must leave the window so that only limit-1 remain before the next one.
    leaving = attempts[len(attempts) - limit]
    return max(1, math.ceil((leaving + window - now).total_seconds()))


def check_admin_remains(
    *, target_role: str, target_active: bool, new_role: str, new_active: bool, active_admins: int
) -> None:
    """An account always keeps at least one active admin (otherwise nobody could manage it again)."""
    was_active_admin = target_role == "admin" and target_active
    stays_active_admin = new_role == "admin" and new_active
    if was_active_admin and not stays_active_admin and active_admins <= 1:
        raise LastActiveAdmin()
