"""A machine key.json swapped for another key is shown, and re-keying to it needs a confirmation."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import MachineKeyChangedError
from fleet_sdk.sops.keychange import changes, refuse_unconfirmed
from fleet_sdk.sops.tree import KeyEntry, SopsTree

from .vars_project import fleet_cli, make_project

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine

def build(settings):
    token = Generator(name="token", files=(GeneratorFile(name="t"),), script='echo t0k3n > "$out/t"')
    return Fleet(name="demo", machines=(Machine(name="web", generators=(token,)), Machine(name="db", generators=(token,))))
"""
SECRET = Path("vars/per-machine/web/token/t")


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root, env = make_project(tmp_path / "fleet", STACK)
    out = fleet_cli(root, env, "vars", "generate")
    assert out.returncode == 0, out.stderr.decode()
    return root, env


def swap_key(repo: Path, machine: str) -> str:
    private, public = sops.generate()
    SopsTree(repo).write_keys("machines", machine, [KeyEntry(public)])
    return private


def test_a_swapped_machine_key_is_shown_and_fix_refuses_without_confirmation(project) -> None:
    repo, env = project
    old = SopsTree(repo).keys_of("machines", "web")
    assert changes(SopsTree(repo)) == []
    attacker = swap_key(repo, "web")
    found = changes(SopsTree(repo))
    assert [(c.machine, c.old, c.secrets) for c in found] == [("web", tuple(old), (SECRET,))]
    before = (repo / SECRET / "secret").read_bytes()

    fix = fleet_cli(repo, env, "vars", "fix")
    assert fix.returncode == 1
    err = fix.stderr.decode()
    assert err.startswith("error: machine web: sops/machines/web/key.json holds") and "--accept-key-change" in err
    assert (repo / SECRET / "secret").read_bytes() == before  # nothing re-encrypted
    with pytest.raises(sops.NoMatchingKeyError):
        sops.decrypt(before, [attacker])
    check = fleet_cli(repo, env, "vars", "check")
    assert check.returncode == 1 and "web: sops/machines/web/key.json: holds" in check.stdout.decode()

    accepted = fleet_cli(repo, env, "vars", "fix", "--accept-key-change")
    assert accepted.returncode == 0, accepted.stderr.decode()
    assert "accepted the new key of machine web" in accepted.stdout.decode()
    assert sops.decrypt((repo / SECRET / "secret").read_bytes(), [attacker]) == b"t0k3n\n"
    assert changes(SopsTree(repo)) == []


def test_a_machine_newly_linked_to_a_secret_is_no_key_change(project) -> None:
    repo, env = project
    tree = SopsTree(repo)
    tree.add_member(repo / SECRET, "machines", "db")  # a new reader, not a new key
    assert changes(tree) == []
    assert refuse_unconfirmed(tree, accept=False) == []
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    assert fleet_cli(repo, env, "vars", "fix").returncode == 0


def test_refuse_unconfirmed_raises_before_anything_changes(project) -> None:
    repo, _ = project
    swap_key(repo, "db")
    with pytest.raises(MachineKeyChangedError, match="machine db"):
        refuse_unconfirmed(SopsTree(repo), accept=False)
    assert [c.machine for c in refuse_unconfirmed(SopsTree(repo), accept=True)] == ["db"]
