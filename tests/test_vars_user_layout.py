"""The prod stack against a repository laid out as the user's fleet repository is (its public vars/
and sops/ layout): clan's all-shared ZeroTier vars, each identity linked to its own machine and one
admin. `fleet vars check` must find nothing wrong with them, or the first `fleet vars fix` would
re-encrypt a controller's identity to every peer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.zerotier.identity import Identity, network_id, rfc4193

from .conftest import PROJECT

# who administers which machine's secrets in the user's repository
ADMIN_OF = {
    "cinnabar": "crs58",
    "electrum": "crs58",
    "galena": "cameron",
    "magnetite": "cameron",
    "pyrite": "cameron",
    "scheelite": "cameron",
}
CONTROLLER = "cinnabar"
INSTANCE = "zerotier"


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    repo = tmp_path_factory.mktemp("user") / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    tree = SopsTree(repo)
    admins = {}
    for user in sorted(set(ADMIN_OF.values())):
        admins[user] = sops.generate()
        tree.write_keys("users", user, [KeyEntry(admins[user][1])])
    identities = {m: Identity.generate() for m in ADMIN_OF}
    nwid = network_id(identities[CONTROLLER].address)
    for machine, user in ADMIN_OF.items():
        private, public = sops.generate()
        tree.write_keys("machines", machine, [KeyEntry(public)])
        tree.write_secret(tree.secret_dir(f"{machine}-age.key"), private.encode(), {"users": [user]})
        folder = repo / f"vars/shared/zerotier-identity-{machine}/identity-secret"
        tree.write_secret(folder, identities[machine].secret().encode(), {"machines": [machine], "users": [user]})
        ip = repo / f"vars/shared/zerotier-ip-{machine}-{INSTANCE}/ip/value"
        ip.parent.mkdir(parents=True)
        ip.write_text(rfc4193(nwid, identities[machine].address))
    network = repo / f"vars/shared/zerotier-network-{INSTANCE}/network-id/value"
    network.parent.mkdir(parents=True)
    network.write_text(nwid)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    env = {**os.environ, "SOPS_AGE_KEY": admins["cameron"][0]}
    env.pop("SOPS_AGE_KEY_FILE", None)
    return repo, env


def check(repo: Path, env: dict[str, str]) -> list[str]:
    argv = [sys.executable, "-m", "fleet_sdk", "vars", "check", "--project", str(PROJECT), "--stack", "prod"]
    out = subprocess.run([*argv, "--repo", str(repo)], capture_output=True, text=True, env=env, check=False)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.splitlines()


def test_check_finds_nothing_wrong_with_the_zerotier_vars(user_repo) -> None:
    repo, env = user_repo
    lines = check(repo, env)
    assert [line for line in lines if "zerotier" in line] == []
    # the check did look: the prod machines' other vars are reported missing in this repository
    assert any(line.startswith("cinnabar: openssh/ssh.id_ed25519: secret missing") for line in lines)


def test_the_same_repository_with_a_peer_linked_to_the_controller_is_reported(user_repo, tmp_path: Path) -> None:
    source, env = user_repo
    repo = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(source), str(repo)], check=True)
    SopsTree(repo).add_member(repo / "vars/shared/zerotier-identity-cinnabar/identity-secret", "machines", "galena")
    zerotier = [line for line in check(repo, env) if "zerotier" in line]
    assert any(
        line.startswith("galena: vars/shared/zerotier-identity-cinnabar/identity-secret: cinnabar's own secret")
        for line in zerotier
    ), zerotier
