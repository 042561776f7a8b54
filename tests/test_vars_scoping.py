"""A machine's own secrets (its ZeroTier identity, age key, host keys) are encrypted to it and the
admins only; `fleet vars check` reports any other machine linked to one, `fleet vars fix` unlinks
and re-keys it and says to rotate it. Everything runs the real CLI on a git repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import SopsError, SpecError
from fleet_sdk.sops.tree import SopsTree
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Role, ServiceInstance
from fleet_sdk.vars.scoping import ForeignLink, foreign_links, owner_of

from .vars_project import fleet_cli, make_project

STACK = """
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, Machine, Role, ServiceInstance

def build(settings):
    host_key = Generator(name="openssh", files=(GeneratorFile(name="ssh.id_ed25519"),), script='echo k > "$out/ssh.id_ed25519"')
    machines = (Machine(name="ctl", generators=(host_key,)), Machine(name="p0", tags=("peer",)), Machine(name="p1", tags=("peer",)))
    zerotier = ServiceInstance(name="zt", module="zerotier",
                               roles={"controller": Role(machines=("ctl",)), "peer": Role(tags=("peer",))})
    return Fleet(name="demo", machines=machines, instances=(zerotier,))
"""

CTL_IDENTITY = Path("vars/shared/zerotier-identity-ctl/identity-secret")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root, env = make_project(tmp_path_factory.mktemp("scoping") / "fleet", STACK)
    out = fleet_cli(root, env, "vars", "generate")
    assert out.returncode == 0, out.stderr.decode()
    return root, env


def machine_key(repo: Path, env: dict[str, str], machine: str) -> str:
    return SopsTree(repo).machine_private_key(machine, [env["SOPS_AGE_KEY"]])


def opens(repo: Path, secret: Path, key: str) -> bool:
    try:
        sops.decrypt((repo / secret / "secret").read_bytes(), [key])
    except SopsError:
        return False
    return True


def links(folder: Path) -> dict[str, list[str]]:
    return {kind: sorted(os.listdir(folder / kind)) for kind in ("machines", "users") if (folder / kind).is_dir()}


def test_each_identity_is_encrypted_to_its_machine_and_the_admins_only(project) -> None:
    repo, env = project
    tree = SopsTree(repo)
    for machine in ("ctl", "p0", "p1"):
        folder = repo / f"vars/shared/zerotier-identity-{machine}/identity-secret"
        assert links(folder) == {"machines": [machine], "users": ["admin"]}
        wanted = set(tree.keys_of("machines", machine)) | set(tree.keys_of("users", "admin"))
        assert set(sops.recipients((folder / "secret").read_text())) == wanted
    assert opens(repo, CTL_IDENTITY, machine_key(repo, env, "ctl"))
    for peer in ("p0", "p1"):
        assert not opens(repo, CTL_IDENTITY, machine_key(repo, env, peer))
    # the peers still got their network id from the controller's identity, and their addresses
    nwid = (repo / "vars/shared/zerotier-network-zt/network-id/value").read_text()
    assert (repo / "vars/shared/zerotier-ip-p0-zt/ip/value").read_text().startswith("fd" + nwid[:2])
    check = fleet_cli(repo, env, "vars", "check")
    assert check.returncode == 0, check.stdout.decode()


def test_a_peer_linked_to_the_controllers_identity_is_reported_and_repaired(project, tmp_path: Path) -> None:
    source, env = project
    repo = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(source), str(repo)], check=True)
    tree = SopsTree(repo)
    # what an older fleet_sdk wrote: the peer linked, and the secret re-keyed to it
    tree.add_member(repo / CTL_IDENTITY, "machines", "p0")
    assert tree.rekey(repo / CTL_IDENTITY, [env["SOPS_AGE_KEY"]])
    p0_key = machine_key(repo, env, "p0")
    assert opens(repo, CTL_IDENTITY, p0_key)  # the fault bites: the peer can read the controller's key

    check = fleet_cli(repo, env, "vars", "check")
    assert check.returncode == 1
    report = check.stdout.decode()
    assert f"p0: {CTL_IDENTITY}: ctl's own secret is encrypted to machine p0" in report
    assert "fleet vars fix" in report and "rotate" in report

    fix = fleet_cli(repo, env, "vars", "fix")
    assert fix.returncode == 0, fix.stderr.decode()
    assert f"unlinked machines/p0 from {CTL_IDENTITY}" in fix.stdout.decode()
    assert f"re-keyed: {repo / CTL_IDENTITY / 'secret'}" in fix.stdout.decode()
    assert f"warning: {CTL_IDENTITY} was readable by a machine other than its owner; rotate it" in fix.stderr.decode()
    assert links(repo / CTL_IDENTITY) == {"machines": ["ctl"], "users": ["admin"]}
    assert not opens(repo, CTL_IDENTITY, p0_key)
    assert opens(repo, CTL_IDENTITY, machine_key(repo, env, "ctl"))
    assert fleet_cli(repo, env, "vars", "check").returncode == 0
    staged = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", str(CTL_IDENTITY)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert all(line[0] != " " and line[0] != "?" for line in staged.splitlines())  # staged, nothing left out
    again = fleet_cli(repo, env, "vars", "fix")
    assert "every secret is encrypted to exactly its members" in again.stdout.decode()


def test_host_keys_age_keys_and_groups_are_scoped_too(project, tmp_path: Path) -> None:
    source, env = project
    repo = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(source), str(repo)], check=True)
    tree = SopsTree(repo)
    host_key = Path("vars/per-machine/ctl/openssh/ssh.id_ed25519")
    age_key = Path("sops/secrets/p1-age.key")
    tree.add_member(repo / host_key, "machines", "p1")
    tree.add_member(repo / age_key, "machines", "p0")
    group = repo / "sops/groups/servers"
    for kind, name in (("machines", "ctl"), ("machines", "p1"), ("users", "admin")):
        (group / kind).mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../../{kind}/{name}", group / kind / name)
    os.unlink(repo / CTL_IDENTITY / "machines/ctl")
    tree.add_member(repo / CTL_IDENTITY, "groups", "servers")
    found = sorted(foreign_links(tree), key=lambda f: str(f.secret))
    assert found == [
        ForeignLink(age_key, "p1", "p0", "machines/p0"),
        ForeignLink(host_key, "ctl", "p1", "machines/p1"),
        ForeignLink(CTL_IDENTITY, "ctl", "p1", "groups/servers"),
    ]
    fix = fleet_cli(repo, env, "vars", "fix")
    assert fix.returncode == 0, fix.stderr.decode()
    out = fix.stdout.decode()
    # the group link goes; its users and the owner keep their access through direct links
    assert f"unlinked groups/servers from {CTL_IDENTITY}" in out
    assert f"linked machines/ctl to {CTL_IDENTITY} (was a member of groups/servers)" in out
    assert links(repo / CTL_IDENTITY) == {"machines": ["ctl"], "users": ["admin"]}
    assert links(repo / host_key) == {"machines": ["ctl"], "users": ["admin"]}
    assert links(repo / age_key) == {"users": ["admin"]}
    assert list(foreign_links(SopsTree(repo))) == []
    for rel in (host_key, age_key, CTL_IDENTITY):
        assert f"warning: {rel} was readable" in fix.stderr.decode()


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("vars/per-machine/web/openssh/ssh.id_ed25519", "web"),
        ("vars/shared/zerotier-identity-web/identity-secret", "web"),
        ("sops/secrets/web-age.key", "web"),
        ("vars/shared/zerotier-network-zt/network-id", None),
        ("vars/shared/user-password-root/user-password-hash", None),
        ("sops/secrets/hetzner-api-token", None),
    ],
)
def test_owner_of_a_secret_folder(path: str, owner: str | None) -> None:
    assert owner_of(Path(path)) == owner


def test_a_machine_declaring_another_machines_identity_is_refused() -> None:
    stolen = Generator(
        name="zerotier-identity-ctl", share=True, files=(GeneratorFile(name="identity-secret"),), script="true"
    )
    with pytest.raises(
        SpecError, match="'p0': generator 'zerotier-identity-ctl' is the ZeroTier identity of 'ctl'; declaring it"
    ):
        Fleet(
            name="f",
            machines=(Machine(name="ctl"), Machine(name="p0", tags=("peer",))),
            instances=(
                ServiceInstance(
                    name="zt",
                    module="zerotier",
                    roles={"controller": Role(machines=("ctl",)), "peer": Role(tags=("peer",), generators=(stolen,))},
                ),
            ),
        )
