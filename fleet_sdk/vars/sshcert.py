"""OpenSSH host certificates, signed in-process (the format of OpenSSH's PROTOCOL.certkeys), with
what `ssh-keygen -s CA -I ID -h -n PRINCIPALS` puts in them: serial 0, valid forever, no options."""

from __future__ import annotations

import base64
import os
import struct

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_private_key,
    load_ssh_public_key,
)

CERT_TYPE = b"ssh-ed25519-cert-v01@openssh.com"
HOST = 2
FOREVER = 0xFFFFFFFFFFFFFFFF


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _ed25519_blob(key: ed25519.Ed25519PublicKey) -> bytes:
    return _string(b"ssh-ed25519") + _string(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign_host_key(ca_private: bytes, host_public: bytes, key_id: str, principals: list[str], comment: str) -> bytes:
    """The certificate line (`<type> <base64> <comment>\\n`) for an ed25519 host public key line."""
    ca = load_ssh_private_key(ca_private, password=None)
    host = load_ssh_public_key(host_public)
    if not isinstance(ca, ed25519.Ed25519PrivateKey) or not isinstance(host, ed25519.Ed25519PublicKey):
        raise ValueError("host certificates are made for ed25519 keys with an ed25519 CA")
    body = (
        _string(CERT_TYPE)
        + _string(os.urandom(32))  # nonce
        + _string(host.public_bytes(Encoding.Raw, PublicFormat.Raw))
        + struct.pack(">QI", 0, HOST)  # serial, type
        + _string(key_id.encode())
        + _string(b"".join(_string(p.encode()) for p in principals))
        + struct.pack(">QQ", 0, FOREVER)  # valid after, valid before
        + _string(b"")  # critical options
        + _string(b"")  # extensions
        + _string(b"")  # reserved
        + _string(_ed25519_blob(ca.public_key()))
    )
    signature = _string(b"ssh-ed25519") + _string(ca.sign(body))
    blob = body + _string(signature)
    return CERT_TYPE + b" " + base64.b64encode(blob) + b" " + comment.encode() + b"\n"
