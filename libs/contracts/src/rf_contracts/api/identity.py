"""Public REST models of identity: accounts, users and tokens (owned by the gateway)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from rf_contracts.api.text import Storable

Role = Literal["viewer", "engineer", "admin"]

# Emails are case-insensitive: stored and compared in lower case. U+0085 is named because `\s` covers it where
# the pattern is checked (pydantic) but not in the JSON Schema dialect clients read it in (ECMA-262).
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=254,
                      pattern=r"^[^@\s\x00\x85]+@[^@\s\x00\x85]+\.[^@\s\x00\x85]+$"),
    Storable,
]
# At login any string is accepted (a malformed email just fails like an unknown one: 401, not 422).
LoginEmail = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=254), Storable]
# The upper bound keeps hashing cost bounded (argon2 on a megabyte of input is a denial of service).
# Passwords are hashed, never stored, but argon2 hashes their UTF-8 bytes: a lone surrogate has none.
NewPassword = Annotated[str, StringConstraints(min_length=8, max_length=128), Storable]
Password = Annotated[str, StringConstraints(max_length=1024), Storable]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=512), Storable]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Input):
    """POST /auth/register: a new account and its first user, who becomes its admin."""

    email: Email
    password: NewPassword
    full_name: Name
    account_name: Name


class LoginRequest(_Input):
    """POST /auth/login/json (the form variant takes `username` and `password`)."""

    email: LoginEmail
    password: Password


class RefreshRequest(_Input):
    refresh_token: OpaqueToken


class LogoutRequest(_Input):
    """Optional body of POST /auth/logout: also revoke this refresh token's family (the caller's own)."""

    refresh_token: OpaqueToken | None = None


class TokenPair(BaseModel):
    access_token: str = Field(description="EdDSA-signed JWT, short-lived")
    refresh_token: str = Field(description="opaque; single use: each refresh returns a new one")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class AccountRead(BaseModel):
    id: UUID
    name: str
    created_at: AwareDatetime


class UserRead(BaseModel):
    id: UUID
    account_id: UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime


class RegisterResponse(BaseModel):
    user: UserRead
    account: AccountRead


class MeRead(BaseModel):
    """GET /auth/me."""

    id: UUID
    email: str
    full_name: str
    role: Role
    account_id: UUID
    account_name: str


class UserCreate(_Input):
    """POST /users (admin): a new user of the admin's account."""

    email: Email
    password: NewPassword
    full_name: Name
    role: Role = "engineer"


class UserUpdate(_Input):
    """PATCH /users/{id} (admin): change the role, (de)activate, or rename; absent fields stay."""

    role: Role | None = None
    is_active: bool | None = None
    full_name: Name | None = None


class PasswordChange(_Input):
    """POST /auth/password: the signed-in user's own new password, confirmed with the current one."""

    current_password: Password
    new_password: NewPassword


class PasswordReset(_Input):
    """POST /users/{id}/password (admin): a new password for a user of the admin's account."""

    new_password: NewPassword


class UserPage(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int
