"""sops documents of the binary store: one encrypted `data` value plus `sops` metadata.

Written as sops 3.13 writes them (tab indent, metadata keys sorted, trailing newline); read in every
layout since sops 3.7 (null key lists, unknown metadata keys, `key_groups`, no trailing newline).
reference/sops-zerotier.md Part 1 is the spec.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from datetime import UTC, datetime
from typing import Any

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fleet_sdk.errors import (
    EmptySecretError,
    MacMismatchError,
    NoMatchingKeyError,
    NotSopsDocumentError,
    SopsError,
    TamperedError,
)
from fleet_sdk.sops.age import parse_identities, parse_recipient

VERSION = "3.13.1"  # the sops release whose output layout we write
DATA_AAD = b"data:"  # the tree path of the binary store's single value, plus ':'
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
# sha256("sops"): what a mac_only_encrypted MAC is seeded with
_MAC_ONLY_SEED = bytes.fromhex("8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encrypt_value(key: bytes, plaintext: bytes, aad: bytes) -> str:
    iv = os.urandom(32)  # sops uses 32-byte GCM nonces
    sealed = AESGCM(key).encrypt(iv, plaintext, aad)
    return f"ENC[AES256_GCM,data:{_b64(sealed[:-16])},iv:{_b64(iv)},tag:{_b64(sealed[-16:])},type:str]"


def decrypt_value(key: bytes, value: str, aad: bytes, what: str, source: str | None) -> bytes:
    m = _ENC.match(value)
    if not m:
        raise NotSopsDocumentError(f"{what} is not an ENC[AES256_GCM,…] value", source)
    data, iv, tag, type_ = m.groups()
    if type_ not in ("str", "bytes"):
        raise NotSopsDocumentError(f"{what} has type {type_!r}; the binary store holds str", source)
    try:
        return AESGCM(key).decrypt(base64.b64decode(iv), base64.b64decode(data) + base64.b64decode(tag), aad)
    except (InvalidTag, ValueError):
        raise TamperedError(
            f"{what} fails authentication: the file was modified or corrupted; restore it from git "
            "or regenerate the secret",
            source,
        ) from None


def serialize(doc: dict[str, Any]) -> str:
    """JSON as sops (Go) writes it: tab indent, ', '-free separators, Go's HTML escapes, final newline."""
    text = json.dumps(doc, indent="\t", ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text + "\n"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age_entries(data_key: bytes, recipients: list[str]) -> list[dict[str, str]]:
    entries = []
    for text in dict.fromkeys(r.strip() for r in recipients):  # dedupe, keep order
        armored = pyrage.encrypt(data_key, [parse_recipient(text)], armored=True)
        entries.append({"enc": armored.decode(), "recipient": text})  # 3.13: keys sorted
    return entries


def encrypt(plaintext: bytes, recipients: list[str]) -> str:
    """A new sops binary-store document holding `plaintext`, readable by each recipient."""
    if not plaintext:
        raise EmptySecretError("refusing to encrypt an empty secret; a generator must produce content")
    if not recipients:
        raise SopsError("a secret needs at least one recipient (a machine or an admin key)")
    data_key = os.urandom(32)
    lastmodified = _now()
    mac = hashlib.sha512(plaintext).hexdigest().upper().encode()
    doc = {
        "data": encrypt_value(data_key, plaintext, DATA_AAD),
        "sops": {
            "age": _age_entries(data_key, recipients),
            "lastmodified": lastmodified,
            "mac": encrypt_value(data_key, mac, lastmodified.encode()),
            "version": VERSION,
        },
    }
    return serialize(doc)


def parse(document: str | bytes, source: str | None = None) -> dict[str, Any]:
    """The document as JSON, its metadata checked for the types sops writes (a key of the wrong type
    is refused here, naming it, rather than failing deep inside decryption)."""
    try:
        doc = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NotSopsDocumentError("not a sops document (not JSON)", source) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sops"), dict):
        raise NotSopsDocumentError("sops metadata not found; is this file encrypted with sops?", source)
    if not isinstance(doc.get("data"), str):
        raise NotSopsDocumentError("no 'data' value: not a sops binary-store document", source)
    meta = doc["sops"]
    _check_entries(meta.get("age"), "sops.age", source)
    groups = meta.get("key_groups")
    if groups is not None and not isinstance(groups, list):
        raise _damaged(f"sops.key_groups is {type(groups).__name__}, not a list of key groups", source)
    for i, group in enumerate(groups or []):
        if not isinstance(group, dict):
            raise _damaged(f"sops.key_groups[{i}] is {type(group).__name__}, not a key group", source)
        _check_entries(group.get("age"), f"sops.key_groups[{i}].age", source)
    for key, kind in (("lastmodified", str), ("mac", str), ("mac_only_encrypted", bool)):
        if key in meta and not isinstance(meta[key], kind):
            raise _damaged(f"sops.{key} is {type(meta[key]).__name__}, not {kind.__name__}", source)
    return doc


def _damaged(what: str, source: str | None) -> NotSopsDocumentError:
    return NotSopsDocumentError(f"{what}; the file was damaged: restore it from git or regenerate it", source)


def _check_entries(entries: Any, where: str, source: str | None) -> None:
    """An age key list: null, or a list of {"recipient": str, "enc": str}."""
    if entries is None:
        return
    if not isinstance(entries, list):
        raise _damaged(f"{where} is {type(entries).__name__}, not a list of recipients", source)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _damaged(f"{where}[{i}] is {type(entry).__name__}, not a {{recipient, enc}} entry", source)
        for key in ("recipient", "enc"):
            if not isinstance(entry.get(key), str):
                raise _damaged(f"{where}[{i}].{key} is missing or not a string", source)


def age_entries(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Every age master key of the document (checked by `parse`): the top-level list, else those of
    its key groups."""
    meta = doc["sops"]
    entries = list(meta.get("age") or [])
    if not entries:
        for group in meta.get("key_groups") or []:
            entries += group.get("age") or []
    return entries


def recipients(document: str | bytes | dict[str, Any], source: str | None = None) -> list[str]:
    doc = document if isinstance(document, dict) else parse(document, source)
    return [e["recipient"] for e in age_entries(doc)]


def data_key(doc: dict[str, Any], identities: list[str], source: str | None = None) -> bytes:
    ids = parse_identities(identities)
    for entry in age_entries(doc):
        try:
            key = pyrage.decrypt(entry["enc"].encode(), ids) if ids else None
        except pyrage.DecryptError:
            continue
        if key is not None and len(key) == 32:
            return bytes(key)
    listed = ", ".join(e["recipient"][:24] + "…" for e in age_entries(doc)) or "none"
    raise NoMatchingKeyError(
        f"no available age identity decrypts this file (its recipients: {listed}); set SOPS_AGE_KEY or "
        "SOPS_AGE_KEY_FILE to a key of one of them",
        source,
    )


def _verify_mac(doc: dict[str, Any], key: bytes, plaintext: bytes, source: str | None) -> None:
    meta = doc["sops"]
    for required in ("lastmodified", "mac"):
        if required not in meta:
            raise _damaged(f"sops.{required} is missing, so the content cannot be verified", source)
    stored = decrypt_value(key, meta["mac"], meta["lastmodified"].encode(), "the MAC", source).decode()
    digest = hashlib.sha512()
    if meta.get("mac_only_encrypted"):
        digest.update(_MAC_ONLY_SEED)
    digest.update(plaintext)
    if stored != digest.hexdigest().upper():
        raise MacMismatchError(
            "MAC mismatch: the content does not match its MAC; restore the file from git or regenerate it",
            source,
        )


def decrypt(document: str | bytes, identities: list[str], source: str | None = None) -> bytes:
    """The plaintext of a binary-store document, after verifying its MAC."""
    doc = parse(document, source)
    key = data_key(doc, identities, source)
    value = doc["data"]
    plaintext = b"" if value == "" else decrypt_value(key, value, DATA_AAD, "the data value", source)
    _verify_mac(doc, key, plaintext, source)
    return plaintext


def rekey(document: str | bytes, identities: list[str], new_recipients: list[str], source: str | None = None) -> str:
    """The same document encrypted to exactly `new_recipients` (sops updatekeys): the data key, the
    value, the MAC and every other metadata key stay; only the age entries change."""
    doc = parse(document, source)
    key = data_key(doc, identities, source)
    value = doc["data"]
    _verify_mac(
        doc,
        key,
        b"" if value == "" else decrypt_value(key, value, DATA_AAD, "the data value", source),
        source,
    )
    if not new_recipients:
        raise SopsError("a secret needs at least one recipient", source)
    meta = {k: v for k, v in doc["sops"].items() if k != "key_groups"}
    meta["age"] = _age_entries(key, new_recipients)
    doc["sops"] = dict(sorted(meta.items()))
    return serialize(doc)
