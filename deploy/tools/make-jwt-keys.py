"""Writes an Ed25519 token-signing key pair (private.pem, public.pem) into a directory unless one is there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def make_keys(directory: Path, owner: tuple[int, int] | None = None) -> bool:
    """Create the pair in `directory` (idempotent); returns True when it wrote new keys."""
    private_path, public_path = directory / "private.pem", directory / "public.pem"
    directory.mkdir(parents=True, exist_ok=True)
    if private_path.exists() and public_path.exists():
        return False
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(public_pem)
    public_path.chmod(0o644)
    if owner is not None:
        for path in (private_path, public_path):
            os.chown(path, *owner)
    return True


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: make-jwt-keys.py <directory> [uid:gid of the owner]", file=sys.stderr)
        return 2
    owner = None
    if len(argv) == 3:
        uid, _, gid = argv[2].partition(":")
        owner = (int(uid), int(gid or uid))
    directory = Path(argv[1])
    wrote = make_keys(directory, owner)
    print(f"{'wrote' if wrote else 'kept'} {directory}/private.pem and {directory}/public.pem")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
