"""Domain errors that every service raises and the web layer turns into `{"detail": ...}` answers."""


class DomainError(Exception):
    status_code = 400
    # Headers of the answer besides its body (e.g. WWW-Authenticate, Retry-After); per class or per error.
    headers: dict[str, str] | None = None
    # A stable machine-readable name of the case, answered next to `detail` when set.
    code: str | None = None

    def __init__(self, detail: object) -> None:
        super().__init__(str(detail))
        self.detail = detail


class NotFound(DomainError):
    """Missing, or belonging to another account (the two are never told apart)."""

    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Forbidden(DomainError):
    status_code = 403


class Invalid(DomainError):
    status_code = 422


class Unavailable(DomainError):
    status_code = 503
