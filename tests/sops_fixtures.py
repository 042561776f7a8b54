"""The shared sops fixtures (real documents from clan-core with their published test keys)."""

from __future__ import annotations

import os
from pathlib import Path

# The shared fixtures folder sits beside the repository (../shared). FLEET_SHARED overrides that, for
# runs from a copy of the tests elsewhere (mutmut runs them from mutants/tests/).
SHARED = Path(os.environ.get("FLEET_SHARED") or Path(__file__).resolve().parents[2] / "shared")
FIXTURES = SHARED / "fixtures" / "sops"
TEST_KEY = (FIXTURES / "keys" / "clan-core-test-age-key.txt").read_text()
CHECKS_KEY = (FIXTURES / "keys" / "clan-core-checks-secrets-key.txt").read_text()
PEER1_KEY = "AGE-SECRET-KEY-1V4VCVCJEJU0MHFNCAFKS6F89DNS0H6875DD2LDKV56VW95HLUJYQLU3KMN"

# file -> (plaintext, keys that open it)
DOCUMENTS: dict[str, tuple[bytes, list[str]]] = {
    "v3.7.3-binary-foo.json": (b"foo", [CHECKS_KEY]),
    "v3.10.2-binary-a-secret.json": (b"a-secret", [TEST_KEY, PEER1_KEY]),
    "v3.10.2-binary-generated-password.json": (b"2550\n", [TEST_KEY]),
    "v3.10.2-binary-peer1-age-key.json": (PEER1_KEY.encode(), [TEST_KEY]),
}


def document(name: str) -> bytes:
    return (FIXTURES / "clan-core" / name).read_bytes()
