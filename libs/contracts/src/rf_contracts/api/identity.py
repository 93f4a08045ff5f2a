"""Public REST models of identity: accounts, users and tokens (owned by the gateway)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from rf_contracts.api import examples as ex
from rf_contracts.api.examples import example
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

    model_config = example(
        {
            "email": "ada@example.com",
            "password": "correct horse battery",
            "full_name": "Ada Lovelace",
            "account_name": "Acme Support",
        }
    )

    email: Email
    password: NewPassword
    full_name: Name
    account_name: Name


class LoginRequest(_Input):
    """POST /auth/login/json (the form variant takes `username` and `password`)."""

    model_config = example({"email": "ada@example.com", "password": "correct horse battery"})

    email: LoginEmail
    password: Password


class RefreshRequest(_Input):

    model_config = example({"refresh_token": "kq3vT0b9rX2mQ8sLwZ4yHc1nJf7dPa5e"})

    refresh_token: OpaqueToken


class LogoutRequest(_Input):
    """Optional body of POST /auth/logout: also revoke this refresh token's family (the caller's own)."""

    model_config = example({"refresh_token": "kq3vT0b9rX2mQ8sLwZ4yHc1nJf7dPa5e"})

    refresh_token: OpaqueToken | None = None


class TokenPair(BaseModel):

    model_config = example(
        {
            "access_token": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiI4ZDdlIn0.c2lnbmF0dXJl",
            "refresh_token": "Vb2nX8qT1mZ5sR9wLc3yKf7hJd0pAe4g",
            "token_type": "bearer",
            "expires_in": 900,
        }
    )

    access_token: str = Field(description="EdDSA-signed JWT, short-lived")
    refresh_token: str = Field(description="opaque; single use: each refresh returns a new one")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class AccountRead(BaseModel):

    model_config = example({"id": ex.ACCOUNT_ID, "name": "Acme Support", "created_at": ex.AT})

    id: UUID
    name: str
    created_at: AwareDatetime


class UserRead(BaseModel):

    model_config = example(ex.USER)

    id: UUID
    account_id: UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime


class RegisterResponse(BaseModel):

    model_config = example(
        {"user": ex.USER, "account": {"id": ex.ACCOUNT_ID, "name": "Acme Support", "created_at": ex.AT}}
    )

    user: UserRead
    account: AccountRead


class MeRead(BaseModel):
    """GET /auth/me."""

    model_config = example(
        {
            "id": ex.USER_ID,
            "email": "ada@example.com",
            "full_name": "Ada Lovelace",
            "role": "admin",
            "account_id": ex.ACCOUNT_ID,
            "account_name": "Acme Support",
        }
    )

    id: UUID
    email: str
    full_name: str
    role: Role
    account_id: UUID
    account_name: str


class UserCreate(_Input):
    """POST /users (admin): a new user of the admin's account."""

    model_config = example(
        {
            "email": "grace@example.com",
            "password": "another long secret",
            "full_name": "Grace Hopper",
            "role": "engineer",
        }
    )

    email: Email
    password: NewPassword
    full_name: Name
    role: Role = "engineer"


class UserUpdate(_Input):
    """PATCH /users/{id} (admin): change the role, (de)activate, or rename; absent fields stay."""

    model_config = example({"role": "viewer"}, {"is_active": False})

    role: Role | None = None
    is_active: bool | None = None
    full_name: Name | None = None


class PasswordChange(_Input):
    """POST /auth/password: the signed-in user's own new password, confirmed with the current one."""

    model_config = example({"current_password": "correct horse battery", "new_password": "a new long passphrase"})

    current_password: Password
    new_password: NewPassword


class PasswordReset(_Input):
    """POST /users/{id}/password (admin): a new password for a user of the admin's account."""

    model_config = example({"new_password": "a temporary passphrase"})

    new_password: NewPassword


class UserPage(BaseModel):

    model_config = example(ex.page(ex.USER))

    items: list[UserRead]
    total: int
    limit: int
    offset: int
