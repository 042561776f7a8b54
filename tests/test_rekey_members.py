"""Re-keying follows the member links exactly: a member taken off really loses access, a member
linked by hand is kept by every rewrite, and a tampered document is never re-wrapped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.document import data_key, encrypt_value
from fleet_sdk.sops.tree import KeyEntry, SopsTree

ADMIN = sops.generate()
MACHINE = sops.generate()
HELPER = sops.generate()


@pytest.fixture
def tree(tmp_path: Path) -> SopsTree:
    t = SopsTree(tmp_path / "repo")
    t.write_keys("users", "admin", [KeyEntry(ADMIN[1])])
    t.write_keys("users", "helper", [KeyEntry(HELPER[1])])
    t.write_keys("machines", "web", [KeyEntry(MACHINE[1])])
    return t


def opens(path: Path, identity: str) -> bool:
    try:
        sops.decrypt(path.read_bytes(), [identity])
    except sops.NoMatchingKeyError:
        return False
    return True


def test_a_machine_taken_off_a_secret_cannot_read_it_after_rekey(tree: SopsTree) -> None:
    secret = tree.repo / "vars/per-machine/web/gen/file"
    tree.write_secret(secret, b"s3cret", {"users": ["admin"], "machines": ["web"]})
    assert opens(secret / "secret", MACHINE[0])
    os.unlink(secret / "machines/web")
    assert tree.rekey(secret, [ADMIN[0]])
    assert not opens(secret / "secret", MACHINE[0])  # removed, not only never added
    assert set(sops.recipients((secret / "secret").read_text())) == {ADMIN[1]}
    assert sops.decrypt((secret / "secret").read_bytes(), [ADMIN[0]]) == b"s3cret"


def test_a_rewrite_keeps_members_linked_by_hand(tree: SopsTree) -> None:
    secret = tree.repo / "vars/per-machine/web/gen/file"
    tree.write_secret(secret, b"one", {"users": ["admin"], "machines": ["web"]})
    tree.add_member(secret, "users", "helper")  # linked by hand, as `clan secrets users add-secret`
    tree.rekey(secret, [ADMIN[0]])
    tree.write_secret(secret, b"two", {"users": ["admin"], "machines": ["web"]})
    assert sorted(os.listdir(secret / "users")) == ["admin", "helper"]
    assert sops.decrypt((secret / "secret").read_bytes(), [HELPER[0]]) == b"two"


def test_a_tampered_document_is_never_rekeyed(tree: SopsTree) -> None:
    secret = tree.repo / "sops/secrets/token"
    tree.write_secret(secret, b"t0k3n", {"users": ["admin"]})
    doc = json.loads((secret / "secret").read_text())
    key = data_key(doc, [ADMIN[0]])
    # a MAC made under the right data key over other content: decryptable, but not what was written
    doc["sops"]["mac"] = encrypt_value(key, b"0" * 128, doc["sops"]["lastmodified"].encode())
    tampered = json.dumps(doc)
    with pytest.raises(sops.MacMismatchError):
        sops.rekey(tampered, [ADMIN[0]], [ADMIN[1], HELPER[1]])
    (secret / "secret").write_text(tampered)
    tree.add_member(secret, "users", "helper")
    with pytest.raises(sops.MacMismatchError):
        tree.rekey(secret, [ADMIN[0]])
    assert (secret / "secret").read_text() == tampered  # left as it was, for an admin to look at
