"""`fleet vars keygen`: the operator's age key and its sops/users/<name>/key.json (clan.md §3.3).

The repository is written under its lock (vars.lock) and what was written is `git add`ed (the user's
key.json every time, so a key file an interrupted run left untracked is tracked by the next)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fleet_sdk.errors import NoAdminKeyError, SopsError
from fleet_sdk.fs import atomic as fsutil
from fleet_sdk.sops import age
from fleet_sdk.sops.tree import USER_NAME, KeyEntry, SopsTree, rekey_all
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.lock import repository_lock


@dataclass
class KeygenResult:
    user: str
    public_key: str
    key_file: Path | None  # None when the key came from SOPS_AGE_KEY
    created_key: bool
    wrote_user: bool
    rekeyed: list[Path] = field(default_factory=list)
    stuck: list[Path] = field(default_factory=list)  # secrets linking the user that this key cannot open


def keygen(
    repo: Path, user: str | None = None, env: Mapping[str, str] | None = None, runner: Runner | None = None
) -> KeygenResult:
    """Reuse the operator's age key (or create one in the key file) and register it as `user`."""
    runner = LOCAL if runner is None else runner
    env = os.environ if env is None else env
    name = user or env.get("USER") or "admin"
    if not USER_NAME.match(name):
        raise SopsError(f"user name {name!r}: use lower-case letters, digits, '_' and '-' (--name NAME)")
    identities = age.operator_identities(env)
    key_file = age.key_file(env)
    created = False
    if not identities:
        if key_file is None:
            raise NoAdminKeyError("SOPS_AGE_KEY holds no AGE-SECRET-KEY-1… line")
        if key_file.exists() and key_file.read_text().strip():
            raise NoAdminKeyError(f"{key_file} exists but holds no AGE-SECRET-KEY-1… line; fix or move it")
        private, public = age.generate()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fsutil.write_atomic(key_file, f"# created: {stamp}\n# public key: {public}\n{private}\n".encode(), 0o600)
        identities, created = [private], True
    public = age.public_key(identities[0])
    tree = SopsTree(repo)
    key_json = tree.member_dir("users", name) / "key.json"
    with repository_lock(repo, "fleet vars keygen"):
        existing = tree.keys_of("users", name) if key_json.is_file() else []
        wrote = tree.write_keys("users", name, [KeyEntry(k) for k in existing] + [KeyEntry(public)])
        rekeyed, stuck = rekey_all(tree, identities) if wrote else ([], [])
        git.add(runner, repo, [key_json, *rekeyed])
    return KeygenResult(name, public, key_file, created, wrote, rekeyed, stuck)
