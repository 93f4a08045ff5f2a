"""Identity routes (/auth, /users, /api-keys, the internal token-denial feed): parse, authorize, build the command,
call one handler, return its answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Form, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from gateway.deps import ClientAddress, Db, Keys, PasswordHasher, Person, PersonAdmin, Policy, Principals, Tokens
from gateway.handlers import api_keys, auth, denials, users
from rf_contracts.api.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPage
from rf_contracts.api.identity import (
    LoginRequest,
    LogoutRequest,
    MeRead,
    PasswordChange,
    PasswordReset,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    TokenPair,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from rfkit.auth import Admin, Principal

router = APIRouter()

Answers = dict[int | str, dict[str, Any]]
_401: Answers = {401: {"description": "missing, invalid, expired or revoked token"}}
_403: Answers = {403: {"description": "role too low"}}
_CREDENTIALS: Answers = {
    401: {"description": "wrong credentials (the same answer whether the email exists or not)"},
    429: {"description": "too many failed attempts; see Retry-After"},
}


def _coded(description: str, *codes: str) -> dict[str, Any]:
    """An error answer that carries a machine-readable `code` besides its readable `detail`."""
    schema = {"type": "object", "required": ["detail", "code"],
              "properties": {"detail": {"type": "string"}, "code": {"type": "string", "enum": list(codes)}}}
    example = {"detail": description, "code": codes[0]}
    return {"description": description, "content": {"application/json": {"schema": schema, "example": example}}}


# Routes meant for people answer an API key's request so.
_NOT_FOR_KEYS: Answers = {403: _coded("called with an API key: this route is for people", "api_key_not_allowed")}


def _no_store(response: Response) -> None:
    # Tokens must not be kept by any cache on the way (RFC 6749 section 5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _expiry(principal: Principal) -> datetime:
    return datetime.fromtimestamp(principal.expires_at, UTC)


@router.post("/auth/register", tags=["auth"], status_code=status.HTTP_201_CREATED,
             response_model=RegisterResponse,
             responses={403: _coded("registration is closed on this deployment (RF_REGISTRATION=closed); "
                                    "an admin adds users", "registration_closed"),
                        409: {"description": "email already registered"},
                        429: {"description": "too many registrations from this address; see Retry-After"}})
async def register(
    body: RegisterRequest, address: ClientAddress, db: Db, passwords: PasswordHasher, policy: Policy
) -> RegisterResponse:
    """Create an account and its first user, who is its admin."""
    cmd = auth.Register(email=body.email, password=body.password, full_name=body.full_name,
                        account_name=body.account_name, address=address)
    return await auth.register(cmd, db=db, passwords=passwords, policy=policy)


class PasswordForm:
    """The OAuth2 password grant's form (RFC 6749 section 4.3.2), as FastAPI's OAuth2PasswordRequestForm but
    documented as it is read: an empty field counts as missing, and `grant_type`, when sent, is "password"."""

    def __init__(
        self,
        username: Annotated[str, Form(min_length=1, max_length=254, description="the email")],
        password: Annotated[str, Form(min_length=1, max_length=1024)],
        # Empty is allowed by the pattern because it is read as missing (the default), as the document must say.
        grant_type: Annotated[str, Form(pattern="^(password)?$")] = "password",
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form()] = None,
    ) -> None:
        self.username = username
        self.password = password


@router.post("/auth/login", tags=["auth"], name="login", response_model=TokenPair, responses=_CREDENTIALS,
             openapi_extra={"requestBody": {"content": {"application/x-www-form-urlencoded": {
                 "example": {"username": "ada@example.com", "password": "correct horse battery"}}}}})
async def login_form(
    form: Annotated[PasswordForm, Depends()], address: ClientAddress, response: Response,
    db: Db, passwords: PasswordHasher, tokens: Tokens, policy: Policy,
) -> TokenPair:
    """OAuth2 password flow: form fields `username` (the email) and `password`."""
    try:
        credentials = LoginRequest(email=form.username, password=form.password)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    _no_store(response)
    cmd = auth.LogIn(email=credentials.email, password=credentials.password, address=address)
    return await auth.login(cmd, db=db, passwords=passwords, tokens=tokens, policy=policy)


@router.post("/auth/login/json", tags=["auth"], response_model=TokenPair, responses=_CREDENTIALS)
async def login_json(
    body: LoginRequest, address: ClientAddress, response: Response,
    db: Db, passwords: PasswordHasher, tokens: Tokens, policy: Policy,
) -> TokenPair:
    _no_store(response)
    cmd = auth.LogIn(email=body.email, password=body.password, address=address)
    return await auth.login(cmd, db=db, passwords=passwords, tokens=tokens, policy=policy)


@router.post("/auth/refresh", tags=["auth"], response_model=TokenPair,
             responses={401: {"description": "unknown, expired, revoked or already used refresh token"}})
async def refresh(
    body: RefreshRequest, response: Response, db: Db, tokens: Tokens, policy: Policy, principals: Principals
) -> TokenPair:
    """A new pair for a refresh token; the presented token is spent (reusing it revokes its family)."""
    _no_store(response)
    return await auth.refresh(auth.Refresh(refresh_token=body.refresh_token), db=db, tokens=tokens, policy=policy,
                              principals=principals)


@router.get("/auth/me", tags=["auth"], response_model=MeRead, responses=_401 | _NOT_FOR_KEYS)
async def me(principal: Person, db: Db) -> MeRead:
    return await auth.me(account_id=principal.account_id, user_id=principal.user_id, db=db)


@router.post("/auth/logout", tags=["auth"], status_code=status.HTTP_204_NO_CONTENT,
             response_class=Response, responses=_401 | _NOT_FOR_KEYS)
async def logout(principal: Person, db: Db, principals: Principals,
                 body: Annotated[LogoutRequest | None, Body()] = None) -> Response:
    """Revoke the current access token and its refresh family (and `refresh_token`'s family, when given)."""
    cmd = auth.LogOut(account_id=principal.account_id, user_id=principal.user_id, token_id=principal.token_id,
                      token_expires_at=_expiry(principal), refresh_token=body.refresh_token if body else None)
    await auth.logout(cmd, db=db, principals=principals)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/password", tags=["auth"], status_code=status.HTTP_204_NO_CONTENT,
             response_class=Response,
             responses=_401 | {403: _coded("the current password is incorrect (wrong_password), or the call is made "
                                           "with an API key (api_key_not_allowed)",
                                           "wrong_password", "api_key_not_allowed"),
                               429: {"description": "too many wrong passwords; see Retry-After"}})
async def change_password(
    body: PasswordChange, principal: Person, db: Db, passwords: PasswordHasher, policy: Policy,
    principals: Principals,
) -> Response:
    """Change one's own password. The caller's other sessions end; the one making the change goes on."""
    cmd = auth.ChangePassword(
        account_id=principal.account_id, user_id=principal.user_id, token_id=principal.token_id,
        token_expires_at=_expiry(principal), current_password=body.current_password, new_password=body.new_password,
    )
    await auth.change_password(cmd, db=db, passwords=passwords, policy=policy, principals=principals)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", tags=["users"], response_model=UserPage, responses=_401 | _403)
async def list_users(
    principal: Admin, db: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> UserPage:
    return await users.list_users(account_id=principal.account_id, limit=limit, offset=offset, db=db)


@router.post("/users", tags=["users"], status_code=status.HTTP_201_CREATED, response_model=UserRead,
             responses=_401 | _403 | {409: {"description": "email already registered"}})
async def create_user(body: UserCreate, principal: Admin, db: Db, passwords: PasswordHasher) -> UserRead:
    cmd = users.CreateUser(account_id=principal.account_id, email=body.email, password=body.password,
                           full_name=body.full_name, role=body.role)
    return await users.create_user(cmd, db=db, passwords=passwords)


@router.patch("/users/{user_id:uuid}", tags=["users"], response_model=UserRead,
              responses=_401 | _403 | {404: {"description": "no such user in this account"},
                                       409: {"description": "would leave the account without an active admin"}})
async def update_user(
    user_id: UUID, body: UserUpdate, principal: Admin, db: Db, principals: Principals
) -> UserRead:
    """Change a user's role, deactivate or reactivate them, or rename them."""
    cmd = users.UpdateUser(account_id=principal.account_id, user_id=user_id, role=body.role,
                           is_active=body.is_active, full_name=body.full_name)
    return await users.update_user(cmd, db=db, principals=principals)


@router.post("/users/{user_id}/password", tags=["users"], status_code=status.HTTP_204_NO_CONTENT,
             response_class=Response,
             responses=_401 | _403 | {404: {"description": "no such user in this account"}})
async def reset_password(
    user_id: UUID, body: PasswordReset, principal: Admin, db: Db, passwords: PasswordHasher, principals: Principals
) -> Response:
    """Set a user's password. Every session of that user ends: they sign in again with the new password."""
    cmd = users.ResetPassword(account_id=principal.account_id, user_id=user_id, new_password=body.new_password)
    await users.reset_password(cmd, db=db, passwords=passwords, principals=principals)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# A request of the wrong shape (each problem under `errors`) or expires_at in the past.
_INVALID_KEY = _coded("invalid input (validation_failed, each problem under `errors`), or expires_at not in the "
                      "future (api_key_expiry_in_past)", "api_key_expiry_in_past", "validation_failed")
_KEY_ADMIN: Answers = _401 | {403: {"description": "role too low, or the call is made with an API key "
                                                 "(code api_key_not_allowed): keys are managed by people"}}


@router.post("/api-keys", tags=["api-keys"], status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated,
             responses=_KEY_ADMIN | {422: _INVALID_KEY})
async def create_api_key(body: ApiKeyCreate, principal: PersonAdmin, db: Db) -> ApiKeyCreated:
    """Create an API key acting with `role` in the caller's account. The answer is the only time its secret is
    shown: send it as `Authorization: Bearer rf_...`."""
    cmd = api_keys.CreateApiKey(account_id=principal.account_id, created_by=principal.user_id, name=body.name,
                                role=body.role, expires_at=body.expires_at)
    return await api_keys.create_api_key(cmd, db=db)


@router.get("/api-keys", tags=["api-keys"], response_model=ApiKeyPage, responses=_KEY_ADMIN)
async def list_api_keys(
    principal: PersonAdmin, db: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> ApiKeyPage:
    """The account's API keys, revoked ones included, oldest first; never their secrets."""
    return await api_keys.list_api_keys(account_id=principal.account_id, limit=limit, offset=offset, db=db)


@router.delete("/api-keys/{key_id}", tags=["api-keys"], status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response,
               responses=_KEY_ADMIN | {404: _coded("no such API key in this account", "api_key_not_found")})
async def revoke_api_key(
    key_id: UUID, principal: PersonAdmin, db: Db, keys: Keys, tokens: Tokens, principals: Principals
) -> Response:
    """Revoke an API key: refused at once by this gateway, within seconds everywhere. Revoking a revoked key is a
    no-op 204."""
    cmd = api_keys.RevokeApiKey(account_id=principal.account_id, key_id=key_id)
    await api_keys.revoke_api_key(cmd, db=db, known=keys, principals=principals, token_ttl_s=tokens.ttl_s)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


internal = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=False)


@internal.get("/token-denials")
async def token_denials(
    db: Db,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, object]:
    """The feed of denied, unexpired access tokens that every service follows (rfkit.denials).

    It holds token ids and expiry times only: a token id cannot be turned into a token, so the feed reveals
    nothing usable. It is not part of the public API (not in the OpenAPI document); an ingress needs to publish
    only /api.
    """
    return await denials.token_denials(after=after, limit=limit, db=db)
