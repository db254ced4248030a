"""OpenSSH's ``SSHSIG`` signature format (PROTOCOL.sshsig) for ed25519 keys, so ``ssh-keygen -Y verify`` checks it too.

:func:`sign` writes what ``ssh-keygen -Y sign -n dbrunbook`` writes (an armored signature over the sha512 of the
message); :func:`verify` reads it back (and ``ssh-keygen``'s own signatures) and returns the key that signed.
"""
from __future__ import annotations

import base64
import hashlib
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: The namespace of every dbrunbook signature: a signature made for git (namespace ``git``) is never taken for one.
NAMESPACE = "dbrunbook"
KEY_TYPE = "ssh-ed25519"
_MAGIC = b"SSHSIG"


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def key_blob(key: Ed25519PublicKey) -> bytes:
    """The public key in the SSH wire format (what a fingerprint hashes, what a signature embeds)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _string(KEY_TYPE.encode()) + _string(raw)


def _signed_data(message: bytes, hash_name: str) -> bytes:
    digest = hashlib.new(hash_name, message).digest()
    return _MAGIC + _string(NAMESPACE.encode()) + _string(b"") + _string(hash_name.encode()) + _string(digest)


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    """An armored SSH signature of ``message`` (namespace ``dbrunbook``, sha512), as ``ssh-keygen -Y sign`` writes."""
    raw = key.sign(_signed_data(message, "sha512"))
    blob = (_MAGIC + struct.pack(">I", 1) + _string(key_blob(key.public_key())) + _string(NAMESPACE.encode())
            + _string(b"") + _string(b"sha512") + _string(_string(KEY_TYPE.encode()) + _string(raw)))
    text = base64.b64encode(blob).decode()
    lines = [text[i:i + 70] for i in range(0, len(text), 70)]
    return "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"]) + "\n"


def verify(armored: str, message: bytes) -> Ed25519PublicKey:
    """The key that made the armored SSH signature of ``message``; raises ValueError or InvalidSignature."""
    body = [line.strip() for line in armored.strip().splitlines()]
    if len(body) < 3 or body[0] != "-----BEGIN SSH SIGNATURE-----" or body[-1] != "-----END SSH SIGNATURE-----":
        raise ValueError("the signature is not an armored SSH signature")
    reader = _Reader(base64.b64decode("".join(body[1:-1]), validate=True))
    if reader.take(6) != _MAGIC or struct.unpack(">I", reader.take(4))[0] != 1:
        raise ValueError("the signature is not an SSHSIG version 1 signature")
    public, namespace, _reserved, hash_name, signature = (reader.string() for _ in range(5))
    if namespace.decode() != NAMESPACE:
        raise ValueError(f"the signature was made for {namespace.decode()!r}, not {NAMESPACE!r}")
    if hash_name not in (b"sha256", b"sha512"):
        raise ValueError(f"unknown hash {hash_name.decode()!r}")
    key_reader, sig_reader = _Reader(public), _Reader(signature)
    if key_reader.string() != KEY_TYPE.encode() or sig_reader.string() != KEY_TYPE.encode():
        raise ValueError("only ssh-ed25519 signatures are read")
    key = Ed25519PublicKey.from_public_bytes(key_reader.string())
    key.verify(sig_reader.string(), _signed_data(message, hash_name.decode()))
    return key


class _Reader:
    """Reads the SSH wire format: fixed bytes, and strings prefixed with their 32-bit length."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ValueError("the signature is truncated")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def string(self) -> bytes:
        return self.take(struct.unpack(">I", self.take(4))[0])
