"""The zerotier service: validation, clan's generators, the graph's admissions, `fleet zerotier admit`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.errors import FleetError, SpecError
from fleet_sdk.fs import private as privatedir
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec import Fleet, HetznerHost, Machine, Role, ServiceInstance
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import recorded_graph
from fleet_sdk.vars import stock as builtins
from fleet_sdk.vars.generate import GenerateOptions, generate
from fleet_sdk.vars.store import GeneratorId, VarsStore
from fleet_sdk.zerotier.admission import admit, resolve_admission, script
from fleet_sdk.zerotier.identity import Identity, member_id, rfc4193

from .conftest import make_deploy_key

COMMAND = "command:local:Command"


def fleet(
    peers: int = 2,
    controller: tuple[str, ...] = ("ctl",),
    moons: tuple[str, ...] = (),
    deploy_key: bool = False,
    **settings: object,
) -> Fleet:
    machines = [
        Machine(
            name="ctl",
            host=HetznerHost(server_type="cx22", location="fsn1"),
            target_host="ctl.example",
            generators=(builtins.deploy_key(),) if deploy_key else (),
        )
    ]
    machines += [Machine(name=f"p{i}", tags=("peer",)) for i in range(peers)]
    machines += [Machine(name=m) for m in moons if m not in {x.name for x in machines}]
    roles = {"controller": Role(machines=controller, settings=dict(settings)), "peer": Role(tags=("peer",))}
    if moons:
        roles["moon"] = Role(machines=moons)
    return Fleet(
        name="f", machines=tuple(machines), instances=(ServiceInstance(name="zt", module="zerotier", roles=roles),)
    )


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: fleet(controller=("ctl", "p0")), "needs exactly one controller machine, has 2"),
        (lambda: fleet(peers=6, moons=tuple(f"m{i}" for i in range(5))), "at most 4 moons, has 5"),
        (lambda: fleet(moons=("m0",)), "'m0' needs settings.stableEndpoints"),
        (lambda: fleet(allowedIds=["abc"]), "'abc' is not a member id (10 hex digits)"),
        (lambda: fleet(allowedIds=["0000000000"]), "0000000000 is a reserved ZeroTier address"),
        (lambda: fleet(allowedIds=["ff12345678"]), "ff12345678 is a reserved ZeroTier address"),
        (lambda: fleet(networkId="db4344343b14b9"), "networkId: 'db4344343b14b9' is not a network id"),
        (lambda: fleet(controller=("ghost",)), "roles.controller.machines: 'ghost' is not a machine"),
        (lambda: fleet(allowedIps=["10.0.0.1"]), "'10.0.0.1' is not an IPv6 address"),
    ],
)
def test_bad_input_is_refused_naming_the_instance(build, words: str) -> None:
    with pytest.raises(SpecError) as info:
        build()
    assert "instance 'zt'" in str(info.value) and words in str(info.value)


def test_members_declare_clans_generators() -> None:
    f = fleet(peers=1)
    # each machine declares only its own identity (clan's test_identity_scoped_to_own_machine)
    assert [g.name for g in f.generators_of("p0")] == [
        "zerotier-identity-p0", "zerotier-ip-p0-zt", "zerotier-network-zt",
    ]  # fmt: skip
    assert [g.name for g in f.generators_of("ctl")] == [
        "zerotier-identity-ctl", "zerotier-ip-ctl-zt", "zerotier-network-zt",
    ]  # fmt: skip
    assert all(g.share for g in f.generators_of("p0"))
    network = next(g for g in f.generators_of("ctl") if g.name == "zerotier-network-zt")
    assert network.dependencies == ("zerotier-identity-ctl",)
    assert [(x.name, x.secret, x.deploy) for x in network.files] == [("network-id", False, False)]


def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(repo=tmp_path / "repo", project=tmp_path / "project")


def test_admissions_depend_on_the_controller_and_the_members_identity(tmp_path: Path) -> None:
    graph = recorded_graph(lambda: deploy_fleet(fleet(peers=2, allowedIds=["a1b2c3d4e5"]), settings(tmp_path)))
    admissions = {r.name: r for r in graph.of_type(COMMAND) if "-admit-" in r.name}
    assert set(admissions) == {"zt-admit-p0", "zt-admit-p1", "zt-admit-a1b2c3d4e5"}
    server = graph.one("hcloud:index/server:Server", "ctl").urn
    ctl_vars = graph.one(COMMAND, "ctl-vars").urn
    for name in ("p0", "p1"):
        deps = admissions[f"zt-admit-{name}"].dependencies
        assert {server, ctl_vars, graph.one(COMMAND, f"{name}-vars").urn} <= set(deps)
    assert {server, ctl_vars} <= set(admissions["zt-admit-a1b2c3d4e5"].dependencies)
    network = graph.one("fleet:zerotier:Network", "zt")
    assert all(a.parent == network.urn for a in admissions.values())
    outputs = graph.outputs["zerotier"]["zt"]
    assert set(outputs["members"]) == {"ctl", "p0", "p1", "a1b2c3d4e5"}


def test_adding_a_peer_adds_one_admission_and_changes_the_controller_trigger(tmp_path: Path) -> None:
    def run(peers: int) -> tuple[set[str], list]:
        g = recorded_graph(lambda: deploy_fleet(fleet(peers=peers), settings(tmp_path)))
        return {r.name for r in g.of_type(COMMAND) if "-admit-" in r.name}, g.one(COMMAND, "zt-controller").inputs[
            "triggers"
        ]

    before, trigger_before = run(2)
    after, trigger_after = run(3)
    assert after - before == {"zt-admit-p2"} and before <= after
    assert trigger_before != trigger_after
    assert run(2)[1] == trigger_before  # stable


@pytest.mark.integration
def test_admit_posts_to_the_controllers_local_api_over_ssh(tmp_path: Path, monkeypatch) -> None:
    """Generates the vars for real, then runs `admit` through a stand-in `ssh` (there is no
    controller here) that executes the script it receives with real `sh`, under bwrap with a fake
    /var/lib/zerotier-one, and a recording `curl`."""
    private, public = sops.generate()
    repo = tmp_path / "repo"
    SopsTree(repo).write_keys("users", "admin", [KeyEntry(public)])
    f = fleet(peers=1, deploy_key=True, allowedIds=["a1b2c3d4e5"])
    generate(repo, f, GenerateOptions(identities=[private]))
    store = VarsStore(repo)
    nwid = store.public(GeneratorId("zerotier-network-zt", None), "network-id").decode()  # type: ignore[union-attr]
    ctl = Identity.parse(
        store.secret(GeneratorId("zerotier-identity-ctl", None), "identity-secret", [private]).decode()
    )
    assert ctl.validate() and nwid.startswith(ctl.address) and len(nwid) == 16
    p0_ip = store.public(GeneratorId("zerotier-ip-p0-zt", None), "ip").decode()  # type: ignore[union-attr]
    p0 = Identity.parse(store.secret(GeneratorId("zerotier-identity-p0", None), "identity-secret", [private]).decode())
    assert p0_ip == rfc4193(nwid, p0.address) and member_id(p0_ip) == p0.address

    bin_dir, zt_dir, log = tmp_path / "bin", tmp_path / "zt", tmp_path / "log"
    bin_dir.mkdir()
    zt_dir.mkdir()
    (zt_dir / "authtoken.secret").write_text("tok3n")
    (bin_dir / "ssh").write_text(
        f'#!/bin/sh\necho "ssh $*" >> {log}\nexec bwrap --dev-bind / / --bind {zt_dir} /var/lib/zerotier-one sh -s\n'
    )
    (bin_dir / "curl").write_text(f'#!/bin/sh\necho "curl $*" >> {log}\n')
    for tool in ("ssh", "curl"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SOPS_AGE_KEY", private)

    admission = resolve_admission(store, f, "zt")
    assert admission.members == {"a1b2c3d4e5": "a1b2c3d4e5", "ctl": ctl.address, "p0": p0.address}
    output = admit(store, f, admission, "root@203.0.113.7:2222")
    assert f"admitted p0 ({p0.address})" in output
    lines = log.read_text().splitlines()
    ssh_line = lines[0]
    assert (
        ssh_line.startswith("ssh -o BatchMode=yes")
        and "-p 2222" in ssh_line
        and ssh_line.endswith("root@203.0.113.7 sh -s")
    )
    assert "tok3n" not in ssh_line  # the authtoken is read on the controller, never an argument here
    posts = [line for line in lines if line.startswith("curl")]
    assert len(posts) == 3
    for name, mid in admission.members.items():
        url = f"http://localhost:9993/controller/network/{nwid}/member/{mid}"
        assert f'curl -fsS -X POST -H X-ZT1-AUTH: tok3n -d {{"authorized": true}} {url}' in posts, (name, posts)
    key = Path(ssh_line.split(" -i ")[1].split()[0])  # the deploy key, in a private RAM folder
    assert key.parent.parent == privatedir.base() and key.parent.name.startswith(f"fleet-ssh-{os.getpid()}-")
    assert not key.parent.exists()  # and gone after the call


def test_admit_without_target_host_says_what_to_do(tmp_path: Path) -> None:
    f = Fleet(
        name="f",
        machines=(Machine(name="ctl"), Machine(name="p0", tags=("peer",))),
        instances=(
            ServiceInstance(
                name="zt",
                module="zerotier",
                roles={"controller": Role(machines=("ctl",)), "peer": Role(tags=("peer",))},
            ),
        ),
    )
    store = VarsStore(tmp_path)
    with pytest.raises(Exception, match="no network id yet; run `fleet vars generate ctl`"):
        resolve_admission(store, f, "zt")


@pytest.mark.parametrize(
    ("settings_", "words"),
    [
        ({"allowedIps": ["fd00::1"]}, "fd00::1 is not a ZeroTier RFC 4193 member address"),
        ({"allowedIps": "fddb:4344:343b:14b9:399:930e:e971:d9e0"}, "allowedIps: give a list"),
        ({"allowedIps": ["fddb:4344:343b:14b9:399:93ff:e971:d9e0"]}, "reserved ZeroTier address ffe971d9e0"),
        (
            {"networkId": "db4344343b14b903", "allowedIps": ["fd11:1111:1111:1111:1199:93a1:b2c3:d4e5"]},
            "is not in network db4344343b14b903's range (fddb:4344:343b:14b9:399:9300::/88)",
        ),
    ],
)
def test_bad_allowed_ips_are_refused_naming_the_instance(settings_: dict, words: str) -> None:
    with pytest.raises(SpecError) as info:
        fleet(**settings_)
    assert "instance 'zt': roles.controller.settings.allowedIps" in str(info.value) and words in str(info.value)


def test_external_members_by_address_are_admitted_by_their_member_id(tmp_path: Path, monkeypatch) -> None:
    private, public = sops.generate()
    repo = tmp_path / "repo"
    SopsTree(repo).write_keys("users", "admin", [KeyEntry(public)])
    generate(repo, fleet(peers=1), GenerateOptions(identities=[private]))
    store = VarsStore(repo)
    nwid = store.public(GeneratorId("zerotier-network-zt", None), "network-id").decode()  # type: ignore[union-attr]
    phone = rfc4193(nwid, "9fc45d577c")
    by_address = fleet(peers=1, allowedIps=[phone], allowedIds=["a1b2c3d4e5"])
    admission = resolve_admission(store, by_address, "zt")
    assert admission.members["9fc45d577c"] == "9fc45d577c" and admission.members["a1b2c3d4e5"] == "a1b2c3d4e5"
    assert "admitted 9fc45d577c (9fc45d577c)" in script(admission)
    # an address of another network is refused at admission, naming it and the network's range
    elsewhere = fleet(peers=1, allowedIps=["fd11:1111:1111:1111:1199:93a1:b2c3:d4e5"])
    with pytest.raises(FleetError) as info:
        resolve_admission(store, elsewhere, "zt")
    message = str(info.value)
    assert "instance 'zt': roles.controller.settings.allowedIps" in message
    assert f"fd11:1111:1111:1111:1199:93a1:b2c3:d4e5 is not in network {nwid}'s range" in message

    graph = recorded_graph(lambda: deploy_fleet(by_address, settings(tmp_path)))
    assert {r.name for r in graph.of_type(COMMAND) if "-admit-" in r.name} == {
        "zt-admit-p0", "zt-admit-9fc45d577c", "zt-admit-a1b2c3d4e5",
    }  # fmt: skip
    assert graph.outputs["zerotier"]["zt"]["members"]["9fc45d577c"] == phone


def test_the_controller_is_reached_as_the_user_its_target_host_names(tmp_path: Path) -> None:
    machines = (
        Machine(name="ctl", host=HetznerHost(server_type="cx22", location="fsn1"), target_host="admin@ctl.example"),
        Machine(name="p0", tags=("peer",), target_host="crs58@[fd00::2]:2222"),
    )
    roles = {"controller": Role(machines=("ctl",)), "peer": Role(tags=("peer",))}
    f = Fleet(name="f", machines=machines, instances=(ServiceInstance(name="zt", module="zerotier", roles=roles),))
    make_deploy_key(tmp_path / "repo")
    up = recorded_graph(lambda: deploy_fleet(f, settings(tmp_path)), preview=False)
    ip = up.outputs["machines"]["ctl"]["ipv4"]
    assert up.one(COMMAND, "zt-controller").inputs["create"].endswith(f" --target-host admin@{ip}")
    # without a cloud server the controller is its target host, as written
    by_hand = f.model_copy(update={"machines": (machines[0].model_copy(update={"host": None}), machines[1])})
    graph = recorded_graph(lambda: deploy_fleet(by_hand, settings(tmp_path)), preview=False)
    assert graph.one(COMMAND, "zt-admit-p0").inputs["create"].endswith(" --target-host admin@ctl.example")
    assert str(f.machine("p0").target) == "crs58@[fd00::2]:2222" and f.machine("p0").target.port == 2222  # type: ignore[union-attr]
