"""sops documents (binary store) with age, in pure Python: no sops binary needed.

document = encrypt(b"hunter2", ["age1…", "ssh-ed25519 AAAA…"])
decrypt(document, ["AGE-SECRET-KEY-1…"]) == b"hunter2"   # MAC verified
"""

from fleet_sdk.errors import (
    BrokenMemberError,
    EmptySecretError,
    MacMismatchError,
    NoAdminKeyError,
    NoMatchingKeyError,
    NotSopsDocumentError,
    SopsError,
    TamperedError,
    UnknownRecipientError,
)
from fleet_sdk.sops.age import default_key_file, generate, operator_identities, public_key
from fleet_sdk.sops.document import decrypt, encrypt, recipients, rekey

__all__ = [
    "BrokenMemberError",
    "EmptySecretError",
    "MacMismatchError",
    "NoAdminKeyError",
    "NoMatchingKeyError",
    "NotSopsDocumentError",
    "SopsError",
    "TamperedError",
    "UnknownRecipientError",
    "decrypt",
    "default_key_file",
    "encrypt",
    "generate",
    "operator_identities",
    "public_key",
    "recipients",
    "rekey",
]
