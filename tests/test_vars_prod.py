"""The prod stack's generators on a fixture fleet repository, with the real tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.vars.scoping import foreign_links

from .conftest import PROJECT, prod_fleet
from .vars_project import snapshot

pytestmark = pytest.mark.integration

NIXOS = ("cinnabar", "electrum", "magnetite", "galena", "scheelite", "pyrite")


def fleet_cli(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "fleet_sdk", *args, "--project", str(PROJECT), "--stack", "prod", "--repo", str(repo)]
    return subprocess.run(argv, capture_output=True, env=env, check=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict]:
    repo = tmp_path_factory.mktemp("prod") / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    private, public = sops.generate()
    SopsTree(repo).write_keys("users", "admin", [KeyEntry(public)])
    env = {**os.environ, "SOPS_AGE_KEY": private}
    env.pop("SOPS_AGE_KEY_FILE", None)
    out = fleet_cli(repo, env, "vars", "generate", "--json")
    assert out.returncode == 0, out.stderr.decode()
    return repo, env, json.loads(out.stdout)


def test_every_file_of_every_generator_is_produced(generated) -> None:
    repo, _env, public = generated
    fleet = prod_fleet()
    for machine in NIXOS:
        for g in fleet.generators_of(machine):
            rel = f"shared/{g.name}" if g.share else f"per-machine/{machine}/{g.name}"
            for f in g.all_files:
                assert (repo / "vars" / rel / f.name / ("secret" if f.secret else "value")).is_file(), (
                    machine,
                    rel,
                    f.name,
                )
    assert set(public["cinnabar"]) >= {
        "openssh/ssh.id_ed25519.pub", "openssh-cert/ssh.id_ed25519-cert.pub", "deploy-key/id_ed25519.pub",
        "emergency-access/password-hash", "state-version/version",
    }  # fmt: skip
    assert set(public["stibnite"]) == {"secrets-digest"}  # darwin workstations declare no generators here


def test_secrets_open_with_machine_key_and_admin_key(generated) -> None:
    repo, env, _ = generated
    tree = SopsTree(repo)
    # no built-in generator encrypts one machine's own secret to another
    assert list(foreign_links(tree)) == []
    # pyrite's disk passphrase: six words, no newline, for the installer only (partitioning)
    passphrase = sops.decrypt((repo / "vars/per-machine/pyrite/zfs/key/secret").read_bytes(), [env["SOPS_AGE_KEY"]])
    assert len(passphrase.split(b"-")) == 6 and not passphrase.endswith(b"\n")
    for machine in NIXOS:
        machine_key = tree.machine_private_key(machine, [env["SOPS_AGE_KEY"]])
        host_key = repo / f"vars/per-machine/{machine}/openssh/ssh.id_ed25519/secret"
        assert sops.decrypt(host_key.read_bytes(), [machine_key]) == sops.decrypt(
            host_key.read_bytes(), [env["SOPS_AGE_KEY"]]
        )
        hash_file = repo / f"vars/per-machine/{machine}/user-password-root/user-password-hash/secret"
        assert sops.decrypt(hash_file.read_bytes(), [machine_key]).startswith(b"$6$")
        # every machine's own ZeroTier identity opens with its key and no other machine's
        identity = repo / f"vars/shared/zerotier-identity-{machine}/identity-secret"
        assert sorted(os.listdir(identity / "machines")) == [machine]
        assert sops.decrypt((identity / "secret").read_bytes(), [machine_key])
        # deploy=false secrets are for admins only
        password = repo / f"vars/per-machine/{machine}/user-password-root/user-password/secret"
        with pytest.raises(sops.NoMatchingKeyError):
            sops.decrypt(password.read_bytes(), [machine_key])


def test_ssh_public_values_match_keys_and_certificates_verify(generated, tmp_path: Path) -> None:
    repo, env, _ = generated
    ca_pub = repo / "vars/shared/openssh-ca/id_ed25519.pub/value"
    ca_fp = subprocess.run(
        ["ssh-keygen", "-lf", str(ca_pub)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    for machine in NIXOS:
        private = tmp_path / f"{machine}.key"
        private.write_bytes(
            sops.decrypt(
                (repo / f"vars/per-machine/{machine}/openssh/ssh.id_ed25519/secret").read_bytes(), [env["SOPS_AGE_KEY"]]
            )
        )
        private.chmod(0o600)
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True
        ).stdout
        public = (repo / f"vars/per-machine/{machine}/openssh/ssh.id_ed25519.pub/value").read_text()
        assert public.split()[:2] == derived.split()[:2] and public.endswith(" \n")
        cert = repo / f"vars/per-machine/{machine}/openssh-cert/ssh.id_ed25519-cert.pub/value"
        shown = subprocess.run(["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, check=True).stdout
        assert "host certificate" in shown and f'Key ID: "{machine}"' in shown and f"{machine}.zt" in shown
        assert f"Signing CA: ED25519 {ca_fp}" in shown
        hash_path = repo / f"vars/per-machine/{machine}/openssh-cert/.validation-hash"
        assert len(hash_path.read_text()) == 64


def test_check_passes_second_run_writes_nothing_and_regenerate_is_targeted(generated) -> None:
    repo, env, _ = generated
    check = fleet_cli(repo, env, "vars", "check")
    assert check.returncode == 0, check.stdout.decode()
    before = snapshot(repo)
    assert fleet_cli(repo, env, "vars", "generate").returncode == 0
    assert snapshot(repo) == before
    out = fleet_cli(repo, env, "vars", "generate", "cinnabar", "-g", "openssh", "--regenerate")
    assert out.returncode == 0, out.stderr.decode()
    after = snapshot(repo)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert {k.split("/")[3] for k in changed} == {"openssh", "openssh-cert"}
    assert all(k.startswith("vars/per-machine/cinnabar/") for k in changed)
    assert fleet_cli(repo, env, "vars", "check").returncode == 0
