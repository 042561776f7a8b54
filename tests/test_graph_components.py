"""What the Hetzner component and the vars steps put into the graph, field by field: the labels that
find a fleet's servers in the console, the networks a server gets, both protections, the shared key and
firewall, and the commands, environment and triggers of the steps."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

import pulumi
import pytest

from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph import steps as graph_steps
from fleet_sdk.spec import Fleet, Generator, GeneratorFile, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import RecordedGraph, recorded_graph

SERVER = "hcloud:index/server:Server"
SSH_KEY = "hcloud:index/sshKey:SshKey"
HZ_FIREWALL = "hcloud:index/firewall:Firewall"
COMMAND = "command:local:Command"
CLOUD = "fleet:hetzner:Cloud"


def _fleet() -> Fleet:
    return Fleet(
        name="acme",
        machines=(
            Machine(
                name="web",
                host=HetznerHost(server_type="cx22", location="nbg1", labels={"team": "ops"}, protect=True),
            ),
            Machine(name="db", host=HetznerHost(server_type="cx32", location="fsn1", image="debian-13")),
        ),
    )


def _record(fleet: Fleet, repo: Path, preview: bool = False) -> RecordedGraph:
    graph = recorded_graph(lambda: deploy_fleet(fleet, StackSettings(repo=repo)), preview=preview, stack="dev")
    assert graph.duplicate_urns == []
    return graph


def test_hetzner_servers_carry_labels_networks_and_protection(fleet_repo: Path) -> None:
    graph = _record(_fleet(), fleet_repo)
    web, db = graph.one(SERVER, "web").inputs, graph.one(SERVER, "db").inputs
    assert web["name"] == "web" and db["name"] == "db"
    assert web["labels"] == {"team": "ops", "fleet": "acme", "machine": "web"}
    assert db["labels"] == {"fleet": "acme", "machine": "db"}
    assert (web["serverType"], web["location"], web["image"]) == ("cx22", "nbg1", "debian-12")
    assert (db["serverType"], db["location"], db["image"]) == ("cx32", "fsn1", "debian-13")
    for server in (web, db):
        assert server["publicNets"] == [{"ipv4Enabled": True, "ipv6Enabled": True}]
        assert len(server["sshKeys"]) == 1 and len(server["firewallIds"]) == 1
    assert (web["deleteProtection"], web["rebuildProtection"]) == (True, True)
    assert (db["deleteProtection"], db["rebuildProtection"]) == (False, False)


def test_the_shared_key_and_firewall_are_named_and_labelled_after_the_fleet(fleet_repo: Path) -> None:
    graph = _record(_fleet(), fleet_repo)
    key = graph.one(SSH_KEY, "acme-deploy")
    assert key.inputs["name"] == "acme-deploy"
    assert key.inputs["labels"] == {"fleet": "acme"}
    firewall = graph.one(HZ_FIREWALL, "acme")
    assert firewall.inputs["name"] == "acme" and firewall.inputs["labels"] == {"fleet": "acme"}
    rules = firewall.inputs["rules"]
    assert [(r["direction"], r["protocol"], r.get("port"), r["description"]) for r in rules] == [
        ("in", "tcp", "22", "ssh"),
        ("in", "udp", "9993", "zerotier"),
        ("in", "icmp", None, "icmp"),
    ]
    assert all(r["sourceIps"] == ["0.0.0.0/0", "::/0"] for r in rules)
    cloud = graph.one(CLOUD, "acme")
    assert key.parent == cloud.urn and firewall.parent == cloud.urn


def test_content_hash_is_order_independent_and_content_sensitive() -> None:
    assert graph_steps.content_hash({"a": 1, "b": [2]}) == graph_steps.content_hash({"b": [2], "a": 1})
    assert graph_steps.content_hash({"a": 1}) != graph_steps.content_hash({"a": 2})
    expected = hashlib.sha256(json.dumps({"a": 1}, sort_keys=True).encode()).hexdigest()
    assert graph_steps.content_hash({"a": 1}) == expected


def test_fleet_command_runs_the_programs_interpreter_with_paths_from_the_environment() -> None:
    line = graph_steps.fleet_command(["vars", "generate", "web", "--json"])
    assert shlex.split(line) == [
        "$FLEET_PYTHON", "-m", "fleet_sdk", "vars", "generate", "web", "--json",
        "--repo", "$FLEET_REPO", "--project", "$FLEET_PROJECT",
    ]  # fmt: skip
    assert shlex.split(graph_steps.fleet_command(["x; rm -rf /"]))[3] == "x; rm -rf /"


def test_step_environment_resolves_repo_and_project(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    env = graph_steps.step_environment(StackSettings(repo=tmp_path, project=tmp_path / "proj"))
    assert env == {
        "FLEET_PYTHON": sys.executable,
        "FLEET_REPO": str(tmp_path.resolve()),
        "FLEET_PROJECT": str((tmp_path / "proj").resolve()),
    }
    # no project: the repository is the project
    assert graph_steps.step_environment(StackSettings(repo=tmp_path))["FLEET_PROJECT"] == str(tmp_path.resolve())


def test_a_vars_step_runs_generate_for_its_machine_and_ignores_environment_changes(fleet_repo: Path) -> None:
    token = Generator(name="token", files=(GeneratorFile(name="t"),), script="true")
    fleet = Fleet(name="acme", machines=(Machine(name="web", generators=(token,)),))
    graph = _record(fleet, fleet_repo)
    step = graph.one(COMMAND, "web-vars")
    assert shlex.split(step.inputs["create"])[3:9] == ["vars", "generate", "web", "--json", "--stack", "dev"]
    assert step.options["ignore_changes"] == ["environment"]
    assert step.inputs["addPreviousOutputInEnv"] is False
    assert set(step.inputs["environment"]) == {"FLEET_PYTHON", "FLEET_REPO", "FLEET_PROJECT"}
    declared = [token.definition() | {"name": "token"}]
    assert step.inputs["triggers"] == [graph_steps.content_hash(declared)]


def _picked(stdout: str, machine: str, var: str, required: bool = True) -> object:
    found: list[object] = []

    def program() -> None:
        graph_steps.public_value(pulumi.Output.from_input(stdout), machine, var, required).apply(found.append)

    recorded_graph(program, preview=False)
    return found[0] if found else None


def test_public_value_picks_and_strips_the_machines_value() -> None:
    out = json.dumps({"web": {"k/pub": " ssh-ed25519 AAA \n"}, "db": {"k/pub": "other"}})
    assert _picked(out, "web", "k/pub") == "ssh-ed25519 AAA"
    assert _picked(out, "web", "k/missing", required=False) is None
    assert _picked("not json", "web", "k/pub", required=False) is None


def test_a_required_public_value_that_is_missing_says_which_step_and_what_to_run() -> None:
    with pytest.raises(Exception, match=r"the vars step of web printed no k/pub; run `fleet vars generate web`"):
        _picked(json.dumps({"web": {}}), "web", "k/pub")
