"""ZeroTier identities, network ids and member addresses, without ZeroTier's binaries
(reference/sops-zerotier.md Part 2).

An identity is `<address>:0:<public>[:<private>]`: a 40-bit address and X25519 ‖ Ed25519 keys. The
address is the tail of a memory-hard hash of the public key (2 MiB of Salsa20/20 output, then 131,072
data-dependent swaps); an identity is valid when that hash starts below 17 and ends in its address.
Salsa20 comes from PyCryptodome; the keystream and its prefix XORs are computed with numpy, and only
the swaps run one by one, with the digest's per-step encryption applied lazily (see _memory_hard).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import multiprocessing
import os
import queue
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Event

import numpy as np
from Crypto.Cipher import Salsa20
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleet_sdk.errors import ZeroTierError
from fleet_sdk.tools.runner import LOCAL, Runner

WORDS = 262_144  # 2 MiB of 64-bit words
BLOCKS = WORDS // 8  # 64-byte Salsa20 blocks filling that memory
SWAPS = WORDS // 2  # mixing iterations
FIRST_BYTE_LESS_THAN = 17


def _mix_python(memory: list[int], prefix: np.ndarray, words: list[int], marks: list[int]) -> None:
    """The 131,072 data-dependent swaps. The digest is encrypted (XORed with the next keystream
    block) after every swap; instead each digest word is kept as stored plus the prefix XOR of the
    keystream at the time it was stored: its true value at step j is stored ^ prefix[j] ^ mark."""
    item = prefix.item
    for j in range(SWAPS):
        x0 = memory[2 * j]
        x1 = memory[2 * j + 1]
        a = (x0 >> 56) & 7  # big-endian word % 8: the low bits of its last byte
        b = ((x1 >> 56) & 0xFF) | ((x1 >> 40) & 0xFF00) | ((x1 >> 24) & 0x30000)  # big-endian % 262144
        p = item(j * 8 + a)
        value = words[a] ^ p ^ marks[a]
        words[a] = memory[b]
        marks[a] = p
        memory[b] = value


# Not mutated (`make mutate`): numba cannot compile mutmut's wrapper around it. `_mix_python` is the
# same loop, mutated, and the tests check that both give ZeroTier's hash.
def _mix_compiled(
    memory: np.ndarray, prefix: np.ndarray, words: np.ndarray, marks: np.ndarray
) -> None:  # pragma: no mutate block
    """The same loop for numba (uint64 arrays; explicit widths keep numba from mixing signedness)."""
    mask3, mask8, shift = np.uint64(7), np.uint64(0xFF), np.uint64(56)
    for j in range(SWAPS):
        x0 = memory[2 * j]
        x1 = memory[2 * j + 1]
        a = np.int64((x0 >> shift) & mask3)
        b = np.int64(
            ((x1 >> shift) & mask8)
            | ((x1 >> np.uint64(40)) & np.uint64(0xFF00))
            | ((x1 >> np.uint64(24)) & np.uint64(0x30000))
        )
        p = prefix[j * 8 + a]
        value = words[a] ^ p ^ marks[a]
        words[a] = memory[b]
        marks[a] = p
        memory[b] = value


_Mix = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]
_mix_fast: _Mix | None
try:  # numba, when installed, compiles the loop (about 40x faster); the result is the same
    import numba

    _mix_fast = numba.njit(cache=True, nogil=True)(_mix_compiled)
except ImportError:  # numba is an optional accelerator (pip install fleet_sdk[fast])
    _mix_fast = None
_warm = False


def _warm_up() -> None:
    """Compile (or load from numba's cache) once in this process, before forking searchers."""
    global _warm
    if not _warm and _mix_fast is not None:
        _memory_hard(bytes(64))
        _warm = True


def _memory_hard(public: bytes, compiled: bool = True) -> bytes:
    """ZeroTier's _computeMemoryHardHash over the 64-byte public key."""
    digest = hashlib.sha512(public).digest()
    stream = Salsa20.new(key=digest[:32], nonce=digest[32:40]).encrypt(bytes(64 * (BLOCKS + SWAPS)))
    blocks = np.frombuffer(stream, dtype="<u8").reshape(-1, 8)
    # genmem block i = keystream block 0 ^ … ^ block i (each block is the previous one, encrypted)
    memory = np.bitwise_xor.accumulate(blocks[:BLOCKS], axis=0).reshape(-1)
    prefix = np.zeros((SWAPS + 1, 8), dtype="<u8")
    np.bitwise_xor.accumulate(blocks[BLOCKS:], axis=0, out=prefix[1:])
    flat = prefix.reshape(-1)
    if compiled and _mix_fast is not None:
        words = np.frombuffer(digest, dtype="<u8").copy()
        marks = np.zeros(8, dtype="<u8")
        _mix_fast(memory, flat, words, marks)
        final = words ^ flat[SWAPS * 8 :] ^ marks
        return final.astype("<u8").tobytes()
    memory_list = memory.tolist()
    word_list = np.frombuffer(digest, dtype="<u8").tolist()
    mark_list = [0] * 8
    _mix_python(memory_list, flat, word_list, mark_list)
    end = SWAPS * 8
    result = [word_list[k] ^ flat.item(end + k) ^ mark_list[k] for k in range(8)]
    return np.array(result, dtype="<u8").tobytes()


def _reserved(address: int) -> bool:
    return address == 0 or address >> 32 == 0xFF


@dataclass(frozen=True)
class Identity:
    address: str  # 10 lower-case hex digits: the node id
    public_key: bytes  # X25519 public (32) ‖ Ed25519 public (32)
    private_key: bytes | None = None  # X25519 secret (32) ‖ Ed25519 seed (32)

    @classmethod
    def parse(cls, text: str) -> Identity:
        """identity.secret or identity.public text (a trailing newline is fine)."""
        fields = text.strip().split(":")
        if not 3 <= len(fields) <= 4:
            raise ZeroTierError("a ZeroTier identity is <address>:0:<public>[:<private>]")
        address, kind, public = fields[0].lower(), fields[1], fields[2]
        if kind != "0":
            raise ZeroTierError(f"identity type {kind!r} is not supported (only type 0, C25519)")
        try:
            addr = int(address, 16)
            pub = bytes.fromhex(public)
            priv = bytes.fromhex(fields[3]) if len(fields) == 4 else None
        except ValueError:
            raise ZeroTierError("an identity's address and keys are hex") from None
        if len(address) != 10 or len(pub) != 64 or (priv is not None and len(priv) != 64):
            raise ZeroTierError("an identity has a 10-digit address and 64-byte keys")
        if _reserved(addr):
            raise ZeroTierError(f"address {address} is reserved (0000000000 or ff…)")
        return cls(address, pub, priv)

    @classmethod
    def generate(cls, workers: int | None = None, runner: Runner | None = None) -> Identity:
        """A new identity; the search (about 15 hashes on average) runs on every core."""
        runner = LOCAL if runner is None else runner
        if shutil.which("zerotier-idtool") and not os.environ.get("FLEET_ZEROTIER_PYTHON"):
            return cls.parse(runner.run(["zerotier-idtool", "generate"]).text)
        workers = workers or os.cpu_count() or 1
        _warm_up()
        if workers == 1:
            return _search(None)
        ctx = multiprocessing.get_context("fork")
        found = ctx.Queue()
        stop = ctx.Event()
        procs = [ctx.Process(target=_search_into, args=(found, stop), daemon=True) for _ in range(workers)]
        for p in procs:
            p.start()
        try:
            identity = _first_found(found, procs)
        finally:
            stop.set()
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
        return identity

    def validate(self) -> bool:
        """ZeroTier's locallyValidate: the hash starts below 17 and ends in the address; the
        private key, when present, belongs to the public key."""
        digest = _memory_hard(self.public_key)
        if digest[0] >= FIRST_BYTE_LESS_THAN or digest[59:64].hex() != self.address or _reserved(int(self.address, 16)):
            return False
        return self.private_key is None or _public_of(self.private_key) == self.public_key

    def public(self) -> str:
        return f"{self.address}:0:{self.public_key.hex()}"

    def secret(self) -> str:
        if self.private_key is None:
            raise ZeroTierError(f"identity {self.address} has no private key")
        return f"{self.public()}:{self.private_key.hex()}"


def _public_of(private: bytes) -> bytes:
    ecdh = x25519.X25519PrivateKey.from_private_bytes(private[:32]).public_key()
    sign = ed25519.Ed25519PrivateKey.from_private_bytes(private[32:]).public_key()
    return ecdh.public_bytes(Encoding.Raw, PublicFormat.Raw) + sign.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _search(stop: Event | None) -> Identity:
    """Try X25519 keys until one's hash qualifies (ZeroTier's generateSatisfying); stops early
    (SystemExit) when another worker found one first."""
    while True:
        seed = secrets.token_bytes(32)  # the Ed25519 half stays; only the X25519 secret changes
        sign_public = (
            ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        while stop is None or not stop.is_set():
            ecdh = secrets.token_bytes(32)
            public = (
                x25519.X25519PrivateKey.from_private_bytes(ecdh)
                .public_key()
                .public_bytes(Encoding.Raw, PublicFormat.Raw)
                + sign_public
            )
            digest = _memory_hard(public)
            if digest[0] < FIRST_BYTE_LESS_THAN:
                address = int.from_bytes(digest[59:64], "big")
                if _reserved(address):
                    break  # new keys altogether, as ZeroTier does
                return Identity(f"{address:010x}", public, ecdh + seed)
        if stop is not None and stop.is_set():
            raise SystemExit(0)


def _first_found(
    found: multiprocessing.Queue[Identity], procs: Sequence[multiprocessing.process.BaseProcess]
) -> Identity:
    """The first identity a search process puts in `found`; an error, not a wait without end, when
    every search process died before finding one (killed, out of memory)."""
    while True:
        try:
            identity: Identity = found.get(timeout=1)
            return identity
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and found.empty():
                codes = ", ".join(str(p.exitcode) for p in procs)
                raise ZeroTierError(
                    f"every ZeroTier identity search process ended without an identity (exit codes {codes}, "
                    "a negative one is the signal that ended it); run the command again"
                ) from None


def _search_into(found: multiprocessing.Queue[Identity], stop: Event) -> None:
    with contextlib.suppress(SystemExit):
        found.put(_search(stop))


def network_id(controller_address: str, number: int | None = None) -> str:
    """16 hex digits: the controller's address and a 24-bit number (random, never 0)."""
    address = _node(controller_address)
    if number is None:
        number = 0
        while number == 0:
            number = secrets.randbelow(1 << 24)
    if not 0 < number < 1 << 24:
        raise ZeroTierError(f"network number {number} is not between 1 and 0xffffff")
    return f"{int(address, 16):010x}{number:06x}"


def _node(node_id: str) -> str:
    node = node_id.lower()
    if len(node) != 10 or any(c not in "0123456789abcdef" for c in node):
        raise ZeroTierError(f"{node_id!r} is not a ZeroTier node id (10 hex digits)")
    if _reserved(int(node, 16)):
        raise ZeroTierError(f"node id {node_id} is reserved (0000000000 or ff…)")
    return node


def _network(nwid: str) -> int:
    if len(nwid) != 16 or any(c not in "0123456789abcdef" for c in nwid.lower()):
        raise ZeroTierError(f"{nwid!r} is not a ZeroTier network id (16 hex digits)")
    return int(nwid, 16)


def rfc4193(nwid: str, node_id: str) -> str:
    """The member's RFC 4193 address, as clan stores it (Python's compressed form)."""
    raw = b"\xfd" + _network(nwid).to_bytes(8, "big") + b"\x99\x93" + int(_node(node_id), 16).to_bytes(5, "big")
    return ipaddress.IPv6Address(raw).compressed


def sixplane(nwid: str, node_id: str) -> str:
    """The member's 6PLANE address (ZeroTier's fc… scheme; clan leaves it off)."""
    n = _network(nwid)
    folded = (n ^ (n >> 32)) & 0xFFFFFFFF
    raw = b"\xfc" + folded.to_bytes(4, "big") + int(_node(node_id), 16).to_bytes(5, "big") + b"\x00" * 5 + b"\x01"
    return ipaddress.IPv6Address(raw).compressed


def member_id(ip: str) -> str:
    """The node id inside a member's RFC 4193 address (its last 5 bytes)."""
    return ipaddress.IPv6Address(ip).packed[-5:].hex()
