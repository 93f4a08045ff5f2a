"""Domain errors: what went wrong, in the domain's words. They know nothing of HTTP; `rfkit.web` maps them."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused use case. `code` is a stable snake_case name of the case for machine clients."""

    code: str | None = None
    # Seconds after which the same request may succeed (a rate limit, a dependency coming back); None: not known.
    retry_after_s: int | None = None
    # What a case that always says the same thing says when raised without a detail; None: its category's sentence.
    default_detail: object = None

    def __init_subclass__(cls, *, code: str | None = None, detail: object = None, **kwargs: Any) -> None:
        """A case declared in its class line: `class UserNotFound(NotFound, code="user_not_found", detail="...")`."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
        if detail is not None:
            cls.default_detail = detail

    def __init__(self, detail: object = None, *, code: str | None = None, retry_after_s: int | None = None) -> None:
        if detail is None:
            detail = self.default_detail
        super().__init__(str(detail))
        self.detail = detail
        if code is not None:
            self.code = code
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class NotFound(DomainError):
    """Missing, or belonging to another account (the two are never told apart)."""


class Conflict(DomainError):
    """The current state does not allow it (already claimed, completed, a duplicate...)."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class Unauthenticated(DomainError):
    """The caller's credentials are missing, wrong, expired or revoked."""


class Invalid(DomainError):
    """The request is well-formed but its values break a rule."""


class PreconditionFailed(DomainError):
    """The resource changed since the client read it (its If-Match no longer matches)."""

    code = "precondition_failed"


class RateLimited(DomainError):
    """Too many attempts; `retry_after_s` says when the next one can succeed."""


class Unavailable(DomainError):
    """A dependency could not be asked; the same request may succeed later."""
