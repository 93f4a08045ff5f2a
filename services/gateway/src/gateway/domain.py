"""Identity rules, free of HTTP and SQL: who may change whom, login throttling, and the errors they raise."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from rfkit.errors import Conflict, Forbidden, RateLimited, Unauthenticated

# One answer for every credential failure: it never tells whether the email exists.
BAD_CREDENTIALS = "incorrect email or password"


class AuthenticationFailed(Unauthenticated):
    """Bad credentials, or a refresh token that is unknown, used, revoked or expired."""


class RegistrationClosed(Forbidden):
    """403: this deployment does not let anyone create an account (RF_REGISTRATION=closed); admins add users."""

    code = "registration_closed"

    def __init__(self) -> None:
        super().__init__("registration is closed on this deployment; ask an administrator to add you")


class WrongPassword(Forbidden):
    """403 on a password change whose current password is wrong.

    Not 401: the caller's token is valid, and clients take a 401 to mean "sign in again".
    """

    code = "wrong_password"

    def __init__(self) -> None:
        super().__init__("the current password is incorrect")


class TooManyAttempts(RateLimited):
    """Too many failed logins (or registrations); `retry_after_s` says when the next attempt can succeed."""

    def __init__(self, retry_after_s: int, detail: str = "too many failed login attempts; try again later") -> None:
        super().__init__(detail, retry_after_s=retry_after_s)


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
        raise Conflict("the account's last active admin cannot be demoted or deactivated")
