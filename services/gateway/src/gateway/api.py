"""Identity routes (/auth, /users): validate -> handler -> response model."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Form, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from gateway import handlers
from gateway.handlers import Identity
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
from rfkit.auth import Admin, CurrentPrincipal

router = APIRouter()

Answers = dict[int | str, dict[str, Any]]
_401: Answers = {401: {"description": "missing, invalid, expired or revoked token"}}
_403: Answers = {403: {"description": "role too low"}}
_CREDENTIALS: Answers = {
    401: {"description": "wrong credentials (the same answer whether the email exists or not)"},
    429: {"description": "too many failed attempts; see Retry-After"},
}


def _coded(description: str, code: str) -> dict[str, Any]:
    """An error answer that carries a machine-readable `code` besides its readable `detail`."""
    schema = {"type": "object", "required": ["detail", "code"],
              "properties": {"detail": {"type": "string"}, "code": {"type": "string", "enum": [code]}}}
    example = {"detail": description, "code": code}
    return {"description": description, "content": {"application/json": {"schema": schema, "example": example}}}


def _identity(request: Request) -> Identity:
    return request.app.state.identity  # type: ignore[no-any-return]


IdentityCtx = Annotated[Identity, Depends(_identity)]


def _client_address(request: Request) -> str:
    # The peer, or behind a trusted proxy the client it forwarded for (RF_TRUSTED_PROXIES, gateway.main).
    return request.client.host if request.client else "unknown"


def _no_store(response: Response) -> None:
    # Tokens must not be kept by any cache on the way (RFC 6749 section 5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post("/auth/register", tags=["auth"], status_code=status.HTTP_201_CREATED,
             response_model=RegisterResponse,
             responses={403: _coded("registration is closed on this deployment (RF_REGISTRATION=closed); "
                                    "an admin adds users", "registration_closed"),
                        409: {"description": "email already registered"},
                        429: {"description": "too many registrations from this address; see Retry-After"}})
async def register(body: RegisterRequest, request: Request, ctx: IdentityCtx) -> dict[str, object]:
    """Create an account and its first user, who is its admin."""
    return await handlers.register(ctx, body, address=_client_address(request))


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
async def login_form(form: Annotated[PasswordForm, Depends()], request: Request,
                     response: Response, ctx: IdentityCtx) -> TokenPair:
    """OAuth2 password flow: form fields `username` (the email) and `password`."""
    try:
        credentials = LoginRequest(email=form.username, password=form.password)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    _no_store(response)
    return await handlers.login(ctx, email=credentials.email, password=credentials.password,
                                address=_client_address(request))


@router.post("/auth/login/json", tags=["auth"], response_model=TokenPair, responses=_CREDENTIALS)
async def login_json(body: LoginRequest, request: Request, response: Response, ctx: IdentityCtx) -> TokenPair:
    _no_store(response)
    return await handlers.login(ctx, email=body.email, password=body.password, address=_client_address(request))


@router.post("/auth/refresh", tags=["auth"], response_model=TokenPair,
             responses={401: {"description": "unknown, expired, revoked or already used refresh token"}})
async def refresh(body: RefreshRequest, response: Response, ctx: IdentityCtx) -> TokenPair:
    """A new pair for a refresh token; the presented token is spent (reusing it revokes its family)."""
    _no_store(response)
    return await handlers.refresh(ctx, token=body.refresh_token)


@router.get("/auth/me", tags=["auth"], response_model=MeRead, responses=_401)
async def me(principal: CurrentPrincipal, ctx: IdentityCtx) -> dict[str, object]:
    return await handlers.me(ctx, principal)


@router.post("/auth/logout", tags=["auth"], status_code=status.HTTP_204_NO_CONTENT,
             response_class=Response, responses=_401)
async def logout(principal: CurrentPrincipal, ctx: IdentityCtx,
                 body: Annotated[LogoutRequest | None, Body()] = None) -> Response:
    """Revoke the current access token and its refresh family (and `refresh_token`'s family, when given)."""
    await handlers.logout(ctx, principal, refresh_token=body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/password", tags=["auth"], status_code=status.HTTP_204_NO_CONTENT,
             response_class=Response,
             responses=_401 | {403: _coded("the current password is incorrect", "wrong_password"),
                               429: {"description": "too many wrong passwords; see Retry-After"}})
async def change_password(body: PasswordChange, principal: CurrentPrincipal, ctx: IdentityCtx) -> Response:
    """Change one's own password. The caller's other sessions end; the one making the change goes on."""
    await handlers.change_password(ctx, principal, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", tags=["users"], response_model=UserPage, responses=_401 | _403)
async def list_users(
    principal: Admin, ctx: IdentityCtx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, object]:
    return await handlers.list_users(ctx, principal, limit=limit, offset=offset)


@router.post("/users", tags=["users"], status_code=status.HTTP_201_CREATED, response_model=UserRead,
             responses=_401 | _403 | {409: {"description": "email already registered"}})
async def create_user(body: UserCreate, principal: Admin, ctx: IdentityCtx) -> dict[str, object]:
    return await handlers.create_user(ctx, principal, body)


@router.patch("/users/{user_id:uuid}", tags=["users"], response_model=UserRead,
              responses=_401 | _403 | {404: {"description": "no such user in this account"},
                                       409: {"description": "would leave the account without an active admin"}})
async def update_user(user_id: UUID, body: UserUpdate, principal: Admin, ctx: IdentityCtx) -> dict[str, object]:
    """Change a user's role, deactivate or reactivate them, or rename them."""
    return await handlers.update_user(ctx, principal, user_id=user_id, cmd=body)


@router.post("/users/{user_id}/password", tags=["users"], status_code=status.HTTP_204_NO_CONTENT,
             response_class=Response,
             responses=_401 | _403 | {404: {"description": "no such user in this account"}})
async def reset_password(user_id: UUID, body: PasswordReset, principal: Admin, ctx: IdentityCtx) -> Response:
    """Set a user's password. Every session of that user ends: they sign in again with the new password."""
    await handlers.reset_password(ctx, principal, user_id=user_id, cmd=body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


internal = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=False)


@internal.get("/token-denials")
async def token_denials(
    ctx: IdentityCtx,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, object]:
    """The feed of denied, unexpired access tokens that every service follows (rfkit.denials).

    It holds token ids and expiry times only: a token id cannot be turned into a token, so the feed reveals
    nothing usable. It is not part of the public API (not in the OpenAPI document); an ingress needs to publish
    only /api.
    """
    return await handlers.token_denials(ctx, after=after, limit=limit)
