"""What `fleet vars set` accepts: what a generated value would be.

Every value: not empty (clan treats an empty secret as "open an editor"; an empty public value reads as
missing to nobody) and at most MAX_VALUE_BYTES. Values that other generators or the graph read keep
their form: the `.pub` half of an ssh key pair (openssh, openssh-ca, deploy-key) is one
`ssh-ed25519 …` line matching its private half when that is stored, the private half an unencrypted
OpenSSH ed25519 key; a ZeroTier network id is 16 lower-case hex digits, a member's `ip` an IPv6 address.
"""

from __future__ import annotations

import ipaddress
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_private_key,
    load_ssh_public_key,
)

from fleet_sdk.errors import VarValueError
from fleet_sdk.spec.generators import Generator, GeneratorFile

MAX_VALUE_BYTES = 1 << 20  # 1 MiB: far above any key or certificate, far below what a sops file should hold
# generator -> its private key file; the public half is `<file>.pub` (vars.builtins)
SSH_KEY_PAIRS = {"openssh": "ssh.id_ed25519", "openssh-ca": "id_ed25519", "deploy-key": "id_ed25519"}
_NETWORK_ID = re.compile(r"[0-9a-f]{16}")


def _refuse(machine: str, g: Generator, f: GeneratorFile, problem: str, todo: str) -> VarValueError:
    return VarValueError(f"machine {machine!r}: {g.name}/{f.name}: {problem}; nothing was stored. {todo}")


def check(machine: str, g: Generator, f: GeneratorFile, value: bytes) -> None:
    """The checks that need no other file; raises VarValueError naming the var and what to give."""
    if not value:
        raise _refuse(machine, g, f, "the value is empty", "Give the value on standard input")
    if len(value) > MAX_VALUE_BYTES:
        raise _refuse(
            machine, g, f, f"{len(value)} bytes is more than the limit of {MAX_VALUE_BYTES}", "Give the value itself"
        )
    problem = _form_problem(g, f, value)
    if problem is not None:
        raise _refuse(machine, g, f, *problem)


def ssh_pair(g: Generator, f: GeneratorFile) -> tuple[str, str] | None:
    """(private file, public file) of the ssh key pair `f` belongs to, or None."""
    private = SSH_KEY_PAIRS.get(g.name)
    return (private, f"{private}.pub") if private is not None and f.name in (private, f"{private}.pub") else None


def public_of_private(data: bytes) -> bytes:
    """The raw ed25519 public key of an OpenSSH private key (ValueError if it is not one)."""
    try:
        key = load_ssh_private_key(data, password=None)
    except TypeError:
        raise ValueError("it is protected by a passphrase, which the machine cannot type") from None
    except UnsupportedAlgorithm as e:
        raise ValueError(str(e)) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"it is a {type(key).__name__.removesuffix('PrivateKey')} key, not ed25519")
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_of_line(data: bytes) -> bytes:
    """The raw ed25519 public key of an `ssh-ed25519 AAAA… [comment]` line (ValueError otherwise)."""
    text = data.removesuffix(b"\n")
    if b"\n" in text or b"\r" in text:
        raise ValueError("it is more than one line")
    if not text.startswith(b"ssh-ed25519 "):
        raise ValueError("it does not start with `ssh-ed25519 `")
    key = load_ssh_public_key(text)
    if not isinstance(key, ed25519.Ed25519PublicKey):  # the parser checks the key against its prefix
        raise ValueError("it is not an ed25519 key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def mismatch(machine: str, g: Generator, f: GeneratorFile) -> VarValueError:
    """The public half set does not match the stored private half."""
    pair = ssh_pair(g, f)
    assert pair is not None
    return _refuse(
        machine,
        g,
        f,
        f"this is not the public half of the stored private key {g.name}/{pair[0]}",
        f"Give `ssh-keygen -y -f KEY` of that key, or set {g.name}/{pair[0]} first",
    )


def _form_problem(g: Generator, f: GeneratorFile, value: bytes) -> tuple[str, str] | None:
    pair = ssh_pair(g, f)
    if pair is not None:
        public = f.name == pair[1]
        try:
            (public_of_line if public else public_of_private)(value)
        except ValueError as e:
            what = "an ssh-ed25519 public key line" if public else "an unencrypted OpenSSH ed25519 private key"
            how = "`ssh-keygen -y -f KEY`" if public else "`ssh-keygen -t ed25519 -N ''`"
            return f"not {what} ({e})", f"Give one, as {how} prints or writes it"
        return None
    text = value.decode("ascii", errors="replace")
    if g.name.startswith("zerotier-network-") and f.name == "network-id" and not _NETWORK_ID.fullmatch(text):
        return (
            f"{text[:40]!r} is not a ZeroTier network id",
            "Give its 16 lower-case hex digits without a newline (printf %s ID | fleet vars set …)",
        )
    if g.name.startswith("zerotier-ip-") and f.name == "ip":
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return (
                f"{text[:60]!r} is not an IPv6 address",
                "Give the member's address without a newline (printf %s ADDRESS | fleet vars set …)",
            )
    return None
