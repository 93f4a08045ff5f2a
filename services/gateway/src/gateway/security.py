"""Credentials: the signing key, password hashing, access-token issuing, opaque refresh tokens and API-key secrets."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from uuid import UUID

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from rfkit.auth import Role, issue_access_token


def public_pem_of(private_pem: str) -> str:
    """The public PEM of an Ed25519 private PEM; anything else is refused (tokens are EdDSA only)."""
    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the JWT private key is not a readable unencrypted PEM: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the JWT private key must be an Ed25519 key (tokens are signed with EdDSA)")
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class Passwords:
    """argon2id hashing; runs in a worker thread (argon2 releases the GIL) so the event loop keeps serving."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 4) -> None:
        self._hash = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),))
        # Each hash holds memory_kib of memory: unbounded concurrency would let a flood of logins exhaust it.
        self._slots = asyncio.Semaphore(concurrency)
        # Verified against when the email is unknown, so that both cases cost the same time.
        self._dummy = self._hash.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """(valid, new hash when the stored one uses outdated parameters). `hashed=None`: a dummy check."""
        async with self._slots:
            if hashed is None:
                await asyncio.to_thread(self._hash.verify, password, self._dummy)
                return False, None
            try:
                return await asyncio.to_thread(self._hash.verify_and_update, password, hashed)
            except Exception:  # a corrupt stored hash is a failed login, never a 500
                return False, None


@dataclass(frozen=True)
class IssuedAccess:
    token: str
    token_id: str
    ttl_s: int


class TokenIssuer:
    """Signs access tokens with the gateway's private key (claims defined once, in rfkit.auth)."""

    def __init__(self, private_pem: str, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._key = private_pem
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def access(
        self, *, user_id: UUID, account_id: UUID, role: Role, token_id: str | None = None, ttl_s: int | None = None
    ) -> IssuedAccess:
        token_id = token_id or uuid.uuid4().hex
        ttl_s = ttl_s or self.ttl_s
        token = issue_access_token(
            self._key, user_id=user_id, account_id=account_id, role=role, issuer=self.issuer,
            audience=self.audience, ttl_s=ttl_s, token_id=token_id,
        )
        return IssuedAccess(token=token, token_id=token_id, ttl_s=ttl_s)


def new_refresh_token() -> str:
    """256 random bits; only its hash is stored."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    # A plain hash suffices (no salt, no slow hash): the token is a 256-bit random value, not a password.
    return hashlib.sha256(token.encode()).hexdigest()


KEY_PREFIX = "rf_"
# How many characters of a secret are kept in clear so that a person can recognise a key in a list.
SHOWN_PREFIX = 7


def new_api_key_secret() -> str:
    """`rf_` and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(secret: str) -> str:
    # A plain hash suffices: the secret is 256 random bits, not a password.
    return hashlib.sha256(secret.encode()).hexdigest()
