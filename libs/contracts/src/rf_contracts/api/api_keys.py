"""Public REST models of API keys: credentials for machine clients, created and revoked by an account's admins."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from rf_contracts.api import examples as ex
from rf_contracts.api.examples import example
from rf_contracts.api.identity import Role
from rf_contracts.api.text import Storable

_KEY = {
    "id": "7e57ab1e-0000-4c0d-9e00-00000000a91c", "account_id": ex.ACCOUNT_ID, "name": "CRM sync", "role": "engineer",
    "prefix": "rf_3kT9", "created_by": ex.USER_ID, "created_at": ex.AT, "expires_at": "2027-06-30T00:00:00Z",
    "last_used_at": ex.LATER, "revoked_at": None,
}
KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]


class ApiKeyCreate(BaseModel):
    """POST /api-keys: a key acting with `role` in the caller's account until `expires_at` (never, when null)."""

    model_config = example(
        {"name": "CRM sync", "role": "engineer", "expires_at": "2027-06-30T00:00:00Z"}, extra="forbid"
    )

    name: KeyName
    role: Role
    expires_at: AwareDatetime | None = None


class ApiKeyRead(BaseModel):
    """An API key as listed: never its secret, only the first characters that let a person recognise it."""

    model_config = example(_KEY)

    id: UUID
    account_id: UUID
    name: str
    role: Role
    prefix: str = Field(description="the secret's first characters, e.g. rf_3kT9")
    created_by: UUID
    created_at: AwareDatetime
    expires_at: AwareDatetime | None
    last_used_at: AwareDatetime | None = Field(description="when it was last used (updated at most once a minute)")
    revoked_at: AwareDatetime | None


class ApiKeyCreated(ApiKeyRead):
    """The answer to POST /api-keys: the only time the secret is shown."""

    model_config = example({**_KEY, "secret": "rf_3kT9xQv0c1m8R2pLwZ7aYbN4dE6fH5gJ0sU9iK2oP1q"})

    secret: str = Field(description="`Authorization: Bearer <secret>`; shown once, stored only as a hash")


class ApiKeyPage(BaseModel):
    model_config = example({"items": [_KEY], "total": 1, "limit": 50, "offset": 0})

    items: list[ApiKeyRead]
    total: int
    limit: int
    offset: int
