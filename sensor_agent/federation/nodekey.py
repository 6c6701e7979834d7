"""The SuperNode's key pair: how the provider's SuperLink knows this node is one it admitted.

With SuperNode authentication on, a SuperLink lets in only nodes whose public key the
provider registered; each request is signed with the node's private key. The pair is an
ECDSA P-384 key in OpenSSH form (what ``flower-supernode --auth-supernode-private-key``
reads and ``flwr supernode register`` takes). It is made once, on the node, and the private
half never leaves it: only the public key goes to the provider.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_KEY_BYTES = 16_384  # a P-384 key in OpenSSH form is about 700 bytes
NIST_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})  # what Flower accepts


class NodeKeyError(ValueError):
    """The key file is there but is not a usable key (the message says why)."""


def public_key_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def _public_line(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: two starts at once never overwrite each other's key; the mode is set at creation,
    # so the private key is never readable by others, not even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def ensure(path: Path) -> str:
    """The node's public key (an OpenSSH line); the pair is made at ``path`` if missing."""
    if path.exists():
        if path.stat().st_size > MAX_KEY_BYTES:
            raise NodeKeyError(f"{path}: not a SuperNode key (too large)")
        try:
            key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as err:
            raise NodeKeyError(f"{path}: not an unencrypted OpenSSH private key") from err
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in NIST_CURVES:
            raise NodeKeyError(f"{path}: the SuperNode key must be an EC (NIST curve) key")
        line = _public_line(key)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP384R1())
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        _write_new(path, private, 0o600)
        line = _public_line(key)
    public = public_key_path(path)
    if not public.exists() or public.read_text(encoding="ascii", errors="replace").strip() != line:
        public.unlink(missing_ok=True)
        _write_new(public, (line + "\n").encode("ascii"), 0o644)
    return line
