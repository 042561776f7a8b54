"""The secrets a deploy uploads, as the fleet repository stores them (without opening anything;
sources.machine_secrets decrypts exactly these): the machine's age key, sops/secrets/<m>-age.key,
becomes key.txt, and each deployed neededFor=activation vars secret, vars/<dir>/<file>/secret, becomes
activation/<dir>/<file>.

`ciphertext_digest` hashes those sops documents' bytes — never a plaintext: it needs no key, and a
secret re-encrypted (re-keyed, regenerated) changes it — with where each lands and its owner, group
and mode, so the graph re-runs exactly the deploys whose uploads changed in the repository.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.vars.store import VarsStore, generator_id

# the key under which `fleet vars generate --json` gives each machine's ciphertext_digest, once its
# vars are generated (no "/": it cannot be a GEN/FILE public value)
DIGEST_KEY = "secrets-digest"


class StoredSecret(NamedTuple):
    document: Path  # the sops document in the repository
    owner: str = "root"
    group: str = "root"
    mode: int = 0o400


def uploaded_documents(repo: Path, fleet: Fleet, machine: Machine) -> dict[str, StoredSecret]:
    """Path below the secrets root on the target -> the stored document it is decrypted from; files
    not generated yet are absent."""
    found: dict[str, StoredSecret] = {}
    key = SopsTree(repo).secret_dir(f"{machine.name}-age.key") / "secret"
    if key.is_file():
        found["key.txt"] = StoredSecret(key, "root", "root", 0o600)
    store = VarsStore(repo)
    for g in fleet.generators_of(machine):
        gid = generator_id(g, machine.name)
        for f in g.all_files:
            if f.secret and f.deploy and f.needed_for == "activation" and store.exists(gid, f):
                document = store.file_dir(gid, f.name) / "secret"
                found[f"activation/{gid.rel_dir}/{f.name}"] = StoredSecret(document, f.owner, f.group, int(f.mode, 8))
    return found


def ciphertext_digest(repo: Path, fleet: Fleet, machine: Machine) -> str:
    """SHA-256 over the uploaded secrets' target paths, owners, modes and the SHA-256 of each stored
    document's bytes (ciphertext)."""
    h = hashlib.sha256(b"fleet-stored-secrets-v1\0")
    for path, s in sorted(uploaded_documents(repo, fleet, machine).items()):
        h.update(f"{path}\0{s.owner}\0{s.group}\0{s.mode:o}\0".encode())
        h.update(hashlib.sha256(s.document.read_bytes()).digest())
    return h.hexdigest()


def generated(repo: Path, fleet: Fleet, machine: Machine) -> bool:
    """Whether every generator of the machine is stored (and current): only then is the digest of
    what is in the repository the digest of what a deploy will upload."""
    store = VarsStore(repo)
    return all(store.complete(generator_id(g, machine.name), g) for g in fleet.generators_of(machine))
