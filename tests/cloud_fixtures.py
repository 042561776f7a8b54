"""Fleet repositories with provider credentials as clan secrets: real sops documents, age keys made by
pyrage, member links as clan makes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet_sdk.sops import age
from fleet_sdk.sops.tree import KeyEntry, SopsTree

from .conftest import make_deploy_key

# plaintexts easy to search for in everything a plan prints
HETZNER_TOKEN = "hz-PLAINTEXT-0123456789abcdef0123456789abcdef0123456789abcdef0123"
GCP_JSON = '{"type": "service_account", "private_key": "gcp-PLAINTEXT-key"}'
CLOUDFLARE_TOKEN = "cf-PLAINTEXT-0123456789abcdef0123456789"
PLAINTEXTS = (HETZNER_TOKEN, GCP_JSON, CLOUDFLARE_TOKEN, "PLAINTEXT")

SECRETS = {
    "hetzner-api-token": HETZNER_TOKEN,
    "gcp-service-account-json": GCP_JSON,
    "cloudflare-api-token": CLOUDFLARE_TOKEN,
}
CONFIG = {
    "fleet:hetznerTokenSecret": "hetzner-api-token",
    "fleet:gcpCredentialsSecret": "gcp-service-account-json",
    "fleet:cloudflareTokenSecret": "cloudflare-api-token",
}


@dataclass
class CloudRepo:
    path: Path
    alice: str  # the operator's age identity (AGE-SECRET-KEY-1…)
    bob: str  # another admin's

    def keyless(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An operator with no age key at all (no variable, no default key file)."""
        monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
        monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(self.path.parent / "no-such-keys.txt"))

    def as_operator(self, monkeypatch: pytest.MonkeyPatch, identity: str) -> None:
        monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
        monkeypatch.setenv("SOPS_AGE_KEY", identity)


def make_cloud_repo(root: Path) -> CloudRepo:
    """Users alice and bob; the three provider secrets readable by alice (with a trailing newline, as
    `clan secrets set` from an editor leaves it), `bob-only` readable by bob alone."""
    make_deploy_key(root)
    tree = SopsTree(root)
    alice, alice_pub = age.generate()
    bob, bob_pub = age.generate()
    tree.write_keys("users", "alice", [KeyEntry(alice_pub)])
    tree.write_keys("users", "bob", [KeyEntry(bob_pub)])
    for name, value in SECRETS.items():
        tree.write_secret(tree.secret_dir(name), value.encode() + b"\n", {"users": ["alice"]})
    tree.write_secret(tree.secret_dir("bob-only"), b"bob's token\n", {"users": ["bob"]})
    return CloudRepo(root, alice, bob)


@pytest.fixture
def cloud_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CloudRepo:
    repo = make_cloud_repo(tmp_path / "fleet-repo")
    repo.as_operator(monkeypatch, repo.alice)
    return repo
