"""The SuperNode's key pair (sensor_agent/federation/nodekey.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sensor_agent.federation.nodekey import NodeKeyError, ensure, public_key_path


def test_a_p384_pair_is_made_once_with_the_private_half_for_the_node_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "supernode_key"
    line = ensure(path)
    assert path.stat().st_mode & 0o777 == 0o600
    private = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp384r1"
    # The public line is what flwr supernode register reads.
    public = serialization.load_ssh_public_key(public_key_path(path).read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.public_numbers() == private.public_key().public_numbers()
    assert line.startswith("ecdsa-sha2-nistp384 ")
    assert ensure(path) == line  # kept, never replaced
    public_key_path(path).write_text("someone else's key\n")
    assert ensure(path) == line and public_key_path(path).read_text() == line + "\n"


def test_a_file_that_is_not_an_ec_private_key_is_refused_never_overwritten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "supernode_key"
    path.write_text("garbage")
    with pytest.raises(NodeKeyError, match="not an unencrypted OpenSSH private key"):
        ensure(path)
    assert path.read_text() == "garbage"
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(NodeKeyError, match="EC"):
        ensure(path)
    path.write_bytes(b"x" * 20_000)
    with pytest.raises(NodeKeyError, match="too large"):
        ensure(path)
