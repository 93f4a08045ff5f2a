"""What every text field of the API shares: text PostgreSQL can store (no NUL, no lone surrogate)."""

from __future__ import annotations

from pydantic import AfterValidator


def storable(text: str) -> str:
    """Refuse what PostgreSQL text cannot hold (NUL, lone surrogates), so it is a 422 and not a failed write."""
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text is not valid Unicode") from exc
    return text


Storable = AfterValidator(storable)
