"""age recipients and identities as sops accepts them (pyrage underneath)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyrage

from fleet_sdk.errors import NoAdminKeyError, UnknownRecipientError

Recipient = Any  # pyrage.x25519.Recipient | pyrage.ssh.Recipient
Identity = Any  # pyrage.x25519.Identity | pyrage.ssh.Identity


def parse_recipient(text: str) -> Recipient:
    """An age X25519 key (age1…) or an OpenSSH ed25519/rsa public key line."""
    text = text.strip()
    try:
        if text.startswith("age1") and not text.startswith("age1pq1"):
            return pyrage.x25519.Recipient.from_str(text)
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as e:
        raise UnknownRecipientError(f"recipient {text[:40]!r} is malformed: {e}") from None
    raise UnknownRecipientError(
        f"recipient {text[:40]!r} is not supported: use an age X25519 key (age1…) or an ssh-ed25519 public key"
    )


def parse_identities(texts: list[str]) -> list[Identity]:
    """Identities from key-file contents or single keys: AGE-SECRET-KEY-1… lines (comments and
    blank lines skipped) or an OpenSSH private key."""
    found: list[Identity] = []
    for text in texts:
        if "-----BEGIN OPENSSH PRIVATE KEY-----" in text:
            found.append(pyrage.ssh.Identity.from_buffer(text.encode()))
            continue
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    found.append(pyrage.x25519.Identity.from_str(line))
                except pyrage.IdentityError:
                    raise NoAdminKeyError(
                        "an age identity is malformed; expected lines of the form AGE-SECRET-KEY-1…"
                    ) from None
    return found


def public_key(identity_line: str) -> str:
    """The age1… recipient of an AGE-SECRET-KEY-1… identity."""
    try:
        return str(pyrage.x25519.Identity.from_str(identity_line.strip()).to_public())
    except pyrage.IdentityError:
        raise NoAdminKeyError(
            "an age identity is malformed (from SOPS_AGE_KEY or your key file); expected lines of the form "
            "AGE-SECRET-KEY-1… as `age-keygen` writes them"
        ) from None


def generate() -> tuple[str, str]:
    """A new X25519 key pair as (AGE-SECRET-KEY-1…, age1…)."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def default_key_file(env: Mapping[str, str] | None = None) -> Path:
    """Where sops and clan look for the operator's age keys when no variable says otherwise."""
    env = os.environ if env is None else env
    if sys.platform == "darwin":
        return Path(env.get("HOME", "~")).expanduser() / "Library/Application Support/sops/age/keys.txt"
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(config) / "sops/age/keys.txt"


def key_file(env: Mapping[str, str]) -> Path | None:
    """The operator's key file: SOPS_AGE_KEY_FILE, else the default; None when SOPS_AGE_KEY is set."""
    if env.get("SOPS_AGE_KEY"):
        return None
    return Path(env["SOPS_AGE_KEY_FILE"]) if env.get("SOPS_AGE_KEY_FILE") else default_key_file(env)


def operator_identities(env: Mapping[str, str] | None = None) -> list[str]:
    """The operator's age identities, read as clan reads them: SOPS_AGE_KEY, else the file named by
    SOPS_AGE_KEY_FILE, else the default key file. Empty when none is set up."""
    env = os.environ if env is None else env
    path = key_file(env)
    if path is None:
        text = env["SOPS_AGE_KEY"]
    else:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
    return [
        line.strip() for line in text.replace(" ", "\n").splitlines() if line.strip().startswith("AGE-SECRET-KEY-1")
    ]
