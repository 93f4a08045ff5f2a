"""Generates, once, the Ed25519 keypair with which the local gateway signs and the services verify JWTs."""

from __future__ import annotations

from pathlib import Path

from rf_devstack._util import atomic_write

PRIVATE_KEY_NAME = "jwt_ed25519_private.pem"
PUBLIC_KEY_NAME = "jwt_ed25519_public.pem"


def ensure_jwt_keypair(key_dir: Path) -> tuple[Path, Path]:
    """(private, public) PEM files in `key_dir`, created on first use and then reused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = key_dir / PRIVATE_KEY_NAME, key_dir / PUBLIC_KEY_NAME
    if private_path.is_file() and public_path.is_file():
        return private_path, public_path
    key_dir.mkdir(parents=True, exist_ok=True)
    key_dir.chmod(0o700)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write(private_path, private_pem.decode(), mode=0o600)
    atomic_write(public_path, public_pem.decode(), mode=0o644)
    return private_path, public_path
