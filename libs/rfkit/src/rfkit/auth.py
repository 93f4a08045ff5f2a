"""Access-token verification that every service does itself (public key only), and role dependencies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rfkit.denials import DENIAL_DETAIL
from rfkit.errors import Forbidden, Unauthenticated

Role = Literal["viewer", "engineer", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "engineer": 1, "admin": 2}
ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the gateway vouched for it in the token."""

    user_id: UUID
    account_id: UUID
    role: Role
    token_id: str
    expires_at: int

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class InvalidToken(Exception):
    """A token refused by its signature or claims; `code` is what the client is told (rf_contracts ErrorCode)."""

    def __init__(self, reason: str, *, code: str = "invalid_token") -> None:
        super().__init__(reason)
        self.code = code


class TokenVerifier:
    """Checks signature (EdDSA only: no `none`, no HS/RS confusion), issuer, audience, expiry and claims."""

    def __init__(self, public_keys_pem: list[str], *, issuer: str, audience: str, leeway_s: int = 5) -> None:
        if not public_keys_pem:
            raise ValueError("no public key to verify tokens with")
        # Several keys while a signing key is rotated: a token is valid under any of them. Parsed once here,
        # not on every request; a PEM that is not an Ed25519 public key is refused at startup.
        self._keys = [_ed25519_public_key(pem) for pem in public_keys_pem]
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    def verify(self, token: str) -> Principal:
        last: Exception | None = None
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway_s,
                    options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
                )
                break
            except jwt.InvalidSignatureError as exc:
                last = exc
            except jwt.ExpiredSignatureError as exc:
                raise InvalidToken(str(exc), code="token_expired") from exc
            except jwt.PyJWTError as exc:
                raise InvalidToken(str(exc)) from exc
        else:
            raise InvalidToken(str(last or "invalid signature"))
        if claims.get("typ") != "access":
            raise InvalidToken("not an access token")
        try:
            role = claims["role"]
            if role not in ROLE_RANK:
                raise InvalidToken("unknown role")
            return Principal(
                user_id=UUID(claims["sub"]),
                account_id=UUID(claims["acc"]),
                role=role,
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidToken(f"malformed claims: {exc}") from exc


class RememberingVerifier:
    """A TokenVerifier remembering the tokens it accepted (by their exact text) until they expire.

    Checking an EdDSA signature and the claims costs 0.3-0.4 ms of CPU, as much as a small query; a client sends
    the same token many times in its 15 minutes. Only accepted tokens are remembered, keyed by the whole token
    (any altered byte is a different key), and never beyond their `exp`. Revocation is checked after this, on
    every request (the gateway's principal_check, the services' token-denial feed), so remembering changes no
    answer.
    """

    def __init__(self, verifier: TokenVerifier, *, max_entries: int = 100_000) -> None:
        self._verifier = verifier
        self._accepted: dict[str, Principal] = {}
        self._max_entries = max_entries
        self.issuer = verifier.issuer
        self.audience = verifier.audience

    def verify(self, token: str) -> Principal:
        principal = self._accepted.get(token)
        if principal is not None:
            if time.time() < principal.expires_at:
                return principal
            del self._accepted[token]
        principal = self._verifier.verify(token)  # raises InvalidToken
        if len(self._accepted) >= self._max_entries:
            self._accepted.clear()
        self._accepted[token] = principal
        return principal


def _ed25519_public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key: {type(key).__name__}")
    return key


_bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str, code: str) -> Unauthenticated:
    # A domain error: rfkit.web answers it 401 with WWW-Authenticate: Bearer and its code.
    return Unauthenticated(detail, code=code)


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token", "not_authenticated")
    verifier: TokenVerifier | RememberingVerifier = request.app.state.verifier
    try:
        principal = verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorized(f"invalid token: {exc}", exc.code) from exc
    denials = getattr(request.app.state, "denials", None)
    if denials is not None and (reason := denials.reason(principal.token_id)) is not None:
        raise _unauthorized(f"invalid token: {DENIAL_DETAIL[reason]}", "invalid_token")
    check = getattr(request.app.state, "principal_check", None)
    if check is not None:
        await check(request, principal)
    request.state.principal = principal
    return principal


def require_role(role: Role):  # type: ignore[no-untyped-def]
    """A dependency that lets through callers with at least `role` (403 otherwise)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.at_least(role):
            raise Forbidden(f"requires role {role} or higher", code="forbidden")
        return principal

    return dependency


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Engineer = Annotated[Principal, Depends(require_role("engineer"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


def issue_access_token(
    private_key_pem: str,
    *,
    user_id: UUID,
    account_id: UUID,
    role: Role,
    issuer: str,
    audience: str,
    ttl_s: int = 900,
    token_id: str | None = None,
    now: int | None = None,
) -> str:
    """Sign an access token (the gateway's job; tests use it too, so both share one definition of the claims)."""
    import time
    import uuid as _uuid

    issued = int(now if now is not None else time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": str(user_id),
        "acc": str(account_id),
        "role": role,
        "typ": "access",
        "jti": token_id or _uuid.uuid4().hex,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
    }
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM)


def generate_keypair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public
