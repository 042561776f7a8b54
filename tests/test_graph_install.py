"""The install step of each cloud NixOS machine with disks: what it waits for (server, vars), what
waits for it (deploy, ZeroTier admission), what re-runs it (the server's identity only, the layout
too for a machine with reinstall=True), its command (always the server's public address, as root),
and the warning and output when an installed machine's layout changed."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.disko.layouts import ext4_root
from fleet_sdk.graph import deploy as graph_deploy
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.install.records import layout_digest
from fleet_sdk.spec import Deploy, Fleet, Generator, GeneratorFile, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import RecordedGraph, recorded_graph

from .conftest import prod_everyone, prod_settings
from .test_graph_deploy import probed

COMMAND = "command:local:Command"
SERVER = "hcloud:index/server:Server"
APP = Generator(name="app", files=(GeneratorFile(name="token", needed_for="activation"),), script="true")
DISKS = ext4_root("/dev/sda", boot="bios")


def fleet(**web: Any) -> Fleet:
    hz = HetznerHost(server_type="cx22", location="nbg1")
    return Fleet(
        name="acme",
        machines=(
            Machine(name="web", host=hz, generators=(APP,), **({"disks": DISKS, "deploy": Deploy()} | web)),
            Machine(name="bare", host=hz, generators=(APP,)),  # no disks: installed by hand
            Machine(name="off", host=hz, disks=DISKS, enabled=False),
            Machine(name="hand", target_host="root@hand.example", disks=DISKS, deploy=Deploy()),  # no server
            Machine(name="mac", machine_class="darwin", target_host="me@mac.zt", deploy=Deploy()),
        ),
    )


@pytest.fixture
def repo(fleet_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(graph_deploy, "probe", lambda fleet, settings: probed(fleet))
    return fleet_repo


def record(f: Fleet, repo: Path, preview: bool = False) -> RecordedGraph:
    graph = recorded_graph(lambda: deploy_fleet(f, StackSettings(repo=repo)), preview=preview, stack="dev")
    assert graph.duplicate_urns == []
    return graph


def installs(graph: RecordedGraph) -> dict[str, Any]:
    return {c.name.removesuffix("-install"): c for c in graph.of_type(COMMAND) if c.name.endswith("-install")}


def test_only_cloud_nixos_machines_with_disks_are_installed(repo: Path) -> None:
    graph = record(fleet(), repo)
    steps = installs(graph)
    assert set(steps) == {"web"}
    step = steps["web"]
    assert step.parent == graph.one("fleet:index:Machine", "web").urn
    # no update command, a delete forgetting its known_hosts line (first, on a replacement), and nothing
    # secret: the commands, the paths they run with and the server's id
    assert set(step.inputs) == {"create", "delete", "environment", "triggers", "addPreviousOutputInEnv"}
    assert step.options["ignore_changes"] == ["environment"]
    assert step.options["delete_before_replace"] is True
    assert "machine install web --json --stack dev" in step.inputs["create"]
    assert shlex.split(step.inputs["delete"])[3:7] == ["machine", "forget", "web", "--stack"]


def test_install_waits_for_server_and_vars_and_deploy_waits_for_install(repo: Path) -> None:
    graph = record(fleet(), repo)
    install = graph.one(COMMAND, "web-install")
    assert set(install.dependencies) >= {graph.one(SERVER, "web").urn, graph.one(COMMAND, "web-vars").urn}
    assert install.urn in graph.one(COMMAND, "web-deploy").dependencies
    # a machine the graph does not install deploys after its vars only
    assert not any(d.endswith("-install") for d in graph.one(COMMAND, "hand-deploy").dependencies)


def test_the_target_is_the_servers_public_address_as_root(repo: Path) -> None:
    # its target_host (a ZeroTier name) answers only once the installed system joined the network
    graph = record(fleet(target_host="admin@web.zt"), repo)
    ipv4 = graph.one(SERVER, "web").state["ipv4Address"]
    assert graph.one(COMMAND, "web-install").inputs["create"].endswith(f" --target-host root@{ipv4}")
    assert "--target-host admin@web.zt" not in graph.one(COMMAND, "web-install").inputs["create"]


def test_only_the_servers_identity_triggers_the_install(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = installs(record(fleet(), repo))["web"].inputs
    server_id = record(fleet(), repo).one(SERVER, "web").id
    assert base["triggers"] == [server_id]
    # a new closure, other secrets, other deploy settings, another layout: the same install inputs
    newer = probed(fleet(), {"web": "2"})
    monkeypatch.setattr(graph_deploy, "probe", lambda f, s: newer)
    other = fleet(deploy=Deploy(reboot="if-needed"), disks=ext4_root("/dev/vda", boot="bios"))
    (repo / "vars/per-machine/web/app/token").mkdir(parents=True)
    (repo / "vars/per-machine/web/app/token/secret").write_bytes(b"changed")
    assert installs(record(other, repo))["web"].inputs == base
    # with reinstall=True the layout is part of its identity: a new layout reinstalls
    again = installs(record(fleet(reinstall=True), repo))["web"].inputs["triggers"]
    moved = installs(record(fleet(reinstall=True, disks=ext4_root("/dev/vda", boot="bios")), repo))["web"]
    assert again == [server_id, layout_digest(DISKS.render())]
    assert moved.inputs["triggers"] == [server_id, layout_digest(ext4_root("/dev/vda", boot="bios").render())]


def test_a_changed_layout_on_an_installed_machine_is_flagged(repo: Path) -> None:
    record_file = repo / "machines/web/install.json"
    record_file.parent.mkdir(parents=True)
    record_file.write_text(json.dumps({"layout": layout_digest(DISKS.render()), "host_key": "SHA256:x"}))
    graph = record(fleet(), repo, preview=True)
    assert graph.outputs["machines"]["web"]["reinstall_required"] is False
    assert not any("reinstall" in message for _, message in graph.log)
    moved = fleet(disks=ext4_root("/dev/vda", boot="bios"))
    graph = record(moved, repo, preview=True)
    assert graph.outputs["machines"]["web"]["reinstall_required"] is True
    warnings = [m for severity, m in graph.log if severity == "warning" and "reinstall" in m]
    assert warnings and "machine 'web'" in warnings[0] and "wipes its disks" in warnings[0]
    # with reinstall=True it is no warning: the install re-runs by design
    graph = record(fleet(disks=ext4_root("/dev/vda", boot="bios"), reinstall=True), repo, preview=True)
    assert not any("reinstall" in m for _, m in graph.log)


def test_prod_zerotier_admission_waits_for_the_installs(fleet_repo: Path) -> None:
    everyone = prod_everyone()
    graph = recorded_graph(lambda: deploy_fleet(everyone, prod_settings(fleet_repo)), stack="prod")
    steps = installs(graph)
    assert set(steps) == {m.name for m in everyone.machines if m.cloud and m.machine_class == "nixos" and m.disks}
    controller = graph.one(COMMAND, "cinnabar-install").urn
    admissions = [c for c in graph.of_type(COMMAND) if "-admit-" in c.name]
    assert admissions and all(controller in a.dependencies for a in admissions)
    magnetite = next(a for a in admissions if a.name.endswith("-admit-magnetite"))
    assert steps["magnetite"].urn in magnetite.dependencies
