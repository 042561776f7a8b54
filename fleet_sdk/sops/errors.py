"""Errors of the sops format and the sops/ key tree. Each names the file (when known) and the fix."""

from __future__ import annotations

from fleet_sdk.errors import FleetError


class SopsError(FleetError):
    """Root of everything that goes wrong reading or writing sops documents and keys."""

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class NotSopsDocumentError(SopsError):
    """Not JSON, no `sops` metadata, or no `data` value."""


class NoMatchingKeyError(SopsError):
    """None of the identities can decrypt the data key (wrong or missing key)."""


class TamperedError(SopsError):
    """A value or the MAC failed AES-GCM authentication: the file was changed or corrupted."""


class MacMismatchError(SopsError):
    """The decrypted MAC does not match the plaintext."""


class UnknownRecipientError(SopsError):
    """A recipient that is neither an age X25519 key nor an ssh-ed25519/ssh-rsa public key."""


class EmptySecretError(SopsError):
    """Empty plaintext: sops leaves it unencrypted and clan treats it as 'open an editor'."""


class NoAdminKeyError(SopsError):
    """No operator age identity, or none that matches a user of sops/users/."""


class BrokenMemberError(SopsError):
    """A member symlink of a secret that points nowhere."""
