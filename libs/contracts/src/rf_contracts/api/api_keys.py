"""Public REST models of API keys: credentials for machine clients, created and revoked by an account's admins."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from rf_contracts.api.identity import Role
from rf_contracts.api.text import Storable

KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]


class ApiKeyCreate(BaseModel):
    """POST /api-keys: a key acting with `role` in the caller's account until `expires_at` (never, when null)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "CRM sync", "role": "engineer", "expires_at": "2027-06-30T00:00:00Z"}]
        },
    )

    name: KeyName
    role: Role
    expires_at: AwareDatetime | None = None


class ApiKeyRead(BaseModel):
    """An API key as listed: never its secret, only the first characters that let a person recognise it."""

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

    secret: str = Field(description="`Authorization: Bearer <secret>`; shown once, stored only as a hash")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyRead]
    total: int
    limit: int
    offset: int
