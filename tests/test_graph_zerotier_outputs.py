"""What the ZeroTier part of the graph exports and runs, value by value: the network id and every
member's address (machines from their vars steps, external members from the network id), the exact
`fleet zerotier admit` commands with their environment, and no `--target-host` when the controller has
no address to be reached at."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi

from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph import steps as graph_steps
from fleet_sdk.graph.clouds import gcp as gcp_cloud
from fleet_sdk.graph.offline import MOCK_DEPLOY_KEY
from fleet_sdk.spec import Fleet, HetznerHost, Machine, Role, ServiceInstance
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import FleetMocks, recorded_graph
from fleet_sdk.zerotier import rfc4193

from .conftest import make_deploy_key

COMMAND = "command:local:Command"
NWID = "8056c2e21c000001"
IPS = {"ctl": "fd80:56c2:e21c:0:199:9300:0:1", "p0": "fd80:56c2:e21c:0:199:9300:0:2"}
EXTERNAL = "a1b2c3d4e5"


class ZeroTierMocks(FleetMocks):
    """`fleet vars generate <m> --json` prints the machine's ZeroTier values, as after a real run."""

    def command_stdout(self, state: dict[str, Any]) -> str:
        words = str(state.get("create", "")).split()
        if "generate" not in words:
            return ""
        machine = words[words.index("generate") + 1]
        values = {"deploy-key/id_ed25519.pub": MOCK_DEPLOY_KEY, f"zerotier-ip-{machine}-zt/ip": IPS[machine]}
        if machine == "ctl":
            values["zerotier-network-zt/network-id"] = NWID
        return json.dumps({machine: values})


def _fleet(controller_host: bool = True, controller_target: str | None = "ctl.example") -> Fleet:
    host = HetznerHost(server_type="cx22", location="fsn1") if controller_host else None
    machines = (
        Machine(name="ctl", host=host, target_host=controller_target),
        Machine(name="p0", tags=("peer",)),
    )
    roles = {
        "controller": Role(machines=("ctl",), settings={"allowedIds": [EXTERNAL]}),
        "peer": Role(tags=("peer",)),
    }
    return Fleet(name="f", machines=machines, instances=(ServiceInstance(name="zt", module="zerotier", roles=roles),))


def _settings(tmp_path: Path) -> StackSettings:
    make_deploy_key(tmp_path / "repo")
    return StackSettings(repo=tmp_path / "repo", project=tmp_path / "project")


def test_the_stack_exports_the_network_id_and_every_members_address(tmp_path: Path) -> None:
    f, settings = _fleet(), _settings(tmp_path)
    graph = recorded_graph(lambda: deploy_fleet(f, settings), preview=False, mocks=ZeroTierMocks(preview=False))
    assert graph.outputs["zerotier"] == {
        "zt": {
            "network_id": NWID,
            "members": {"ctl": IPS["ctl"], "p0": IPS["p0"], EXTERNAL: rfc4193(NWID, EXTERNAL)},
        }
    }


def test_admissions_run_fleet_zerotier_admit_with_the_step_environment(tmp_path: Path) -> None:
    f, settings = _fleet(controller_host=False), _settings(tmp_path)
    graph = recorded_graph(lambda: deploy_fleet(f, settings), preview=False, stack="prod")
    expected_env = {"FLEET_PYTHON", "FLEET_REPO", "FLEET_PROJECT"}
    for member in ("p0", EXTERNAL):
        step = graph.one(COMMAND, f"zt-admit-{member}")
        assert shlex.split(step.inputs["create"])[3:] == [
            "zerotier", "admit", "zt", member, "--stack", "prod",
            "--repo", "$FLEET_REPO", "--project", "$FLEET_PROJECT", "--target-host", "root@ctl.example",
        ]  # fmt: skip
        assert set(step.inputs["environment"]) == expected_env
        assert step.options["ignore_changes"] == ["environment"]
        assert step.inputs["addPreviousOutputInEnv"] is False
    controller = graph.one(COMMAND, "zt-controller")
    assert shlex.split(controller.inputs["create"])[3:] == [
        "zerotier", "admit", "zt", "--stack", "prod",
        "--repo", "$FLEET_REPO", "--project", "$FLEET_PROJECT", "--target-host", "root@ctl.example",
    ]  # fmt: skip
    assert set(controller.inputs["environment"]) == expected_env
    assert controller.inputs["triggers"] == [graph_steps.content_hash(sorted(["p0", EXTERNAL, "ctl"]))]


def test_a_controller_without_address_or_target_gets_no_target_host(tmp_path: Path) -> None:
    f, settings = _fleet(controller_host=False, controller_target=None), _settings(tmp_path)
    graph = recorded_graph(lambda: deploy_fleet(f, settings), preview=False)
    for step in (graph.one(COMMAND, "zt-controller"), graph.one(COMMAND, "zt-admit-p0")):
        assert "--target-host" not in shlex.split(step.inputs["create"]), step.inputs["create"]


def test_an_empty_address_adds_no_target_host() -> None:
    seen: list[str] = []

    def program() -> None:
        for host in ("", "root@192.0.2.1"):
            graph_steps.with_target_host("fleet x", pulumi.Output.from_input(host)).apply(seen.append)

    recorded_graph(program, preview=False)
    assert sorted(seen) == ["fleet x", "fleet x --target-host root@192.0.2.1"]


def test_nat_ip_reads_typed_network_interfaces_and_dicts() -> None:
    typed = [SimpleNamespace(access_configs=[SimpleNamespace(nat_ip=None), SimpleNamespace(nat_ip="198.51.100.7")])]
    assert gcp_cloud.nat_ip(typed) == "198.51.100.7"
    assert gcp_cloud.nat_ip([{"access_configs": [{"nat_ip": "198.51.100.8"}]}]) == "198.51.100.8"
    assert gcp_cloud.nat_ip([SimpleNamespace(access_configs=None)]) is None
    assert gcp_cloud.nat_ip(None) is None


def test_content_hash_takes_paths_and_other_plain_values() -> None:
    assert graph_steps.content_hash({"p": Path("/x")}) == graph_steps.content_hash({"p": "/x"})
