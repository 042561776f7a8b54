"""The prod graph under Pulumi mocks with the recording monitor."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from fleet_sdk.errors import DeployKeyMissingError
from fleet_sdk.graph import deploy_fleet, run_program
from fleet_sdk.graph.offline import MOCK_DEPLOY_KEY
from fleet_sdk.spec import Fleet
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import COMPUTED, RecordedGraph, recorded_graph

from .conftest import PROJECT, prod_config, prod_everyone, prod_fleet, prod_settings

SERVER = "hcloud:index/server:Server"
SSH_KEY = "hcloud:index/sshKey:SshKey"
HZ_FIREWALL = "hcloud:index/firewall:Firewall"
INSTANCE = "gcp:compute/instance:Instance"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
CLOUD_TYPES = {SERVER, SSH_KEY, HZ_FIREWALL, INSTANCE, GCP_FIREWALL, DNS_RECORD}


def plan(fleet: Fleet, settings: StackSettings, preview: bool = True) -> RecordedGraph:
    graph = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=preview, stack="prod")
    assert graph.duplicate_urns == []
    return graph


def test_each_hetzner_server_depends_on_the_ssh_key_and_firewall(prod: Fleet, settings: StackSettings) -> None:
    graph = plan(prod, settings)
    key = graph.one(SSH_KEY, "fleet-deploy")
    firewall = graph.one(HZ_FIREWALL, "fleet")
    servers = graph.of_type(SERVER)
    assert sorted(s.name for s in servers) == ["cinnabar", "electrum", "magnetite"]
    for server in servers:
        assert key.urn in server.dependencies and firewall.urn in server.dependencies
        # production servers are protected; electrum is a test VM switched off and on by config
        protected = server.name != "electrum"
        assert server.options["protect"] is protected
        assert server.options["ignore_changes"] == ["sshKeys", "userData"]
        assert server.inputs["image"] == "debian-12"
        assert server.inputs["deleteProtection"] is protected
    assert graph.one(SERVER, "cinnabar").inputs["serverType"] == "cx43"
    assert graph.one(SERVER, "electrum").inputs["serverType"] == "ccx23"
    # the deploy key's public half comes from the vars step of the first machine declaring it
    assert graph.one("command:local:Command", "cinnabar-vars").urn in key.dependencies
    assert key.inputs.get("publicKey", COMPUTED) == COMPUTED
    rules = {(r["protocol"], r.get("port")) for r in firewall.inputs["rules"]}
    assert {("tcp", "22"), ("udp", "9993")} <= rules


def test_scheelite_carries_one_t4_and_terminates_on_maintenance(prod: Fleet, settings: StackSettings) -> None:
    graph = plan(prod, settings)
    scheelite = graph.one(INSTANCE, "scheelite").inputs
    assert scheelite["guestAccelerators"] == [{"type": "nvidia-tesla-t4", "count": 1}]
    assert scheelite["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert scheelite["machineType"] == "n1-standard-8" and scheelite["zone"] == "us-central1-f"
    galena = graph.one(INSTANCE, "galena").inputs
    assert "guestAccelerators" not in galena and "scheduling" not in galena
    assert galena["bootDisk"]["initializeParams"]["size"] == 100
    assert galena["networkInterfaces"] == [{"network": "default", "accessConfigs": [{}]}]
    assert galena["metadata"].get("ssh-keys", COMPUTED) == COMPUTED  # known once the vars step ran
    up = plan(prod, settings, preview=False)
    assert up.one(INSTANCE, "galena").inputs["metadata"]["ssh-keys"] == f"root:{MOCK_DEPLOY_KEY}"
    assert "PermitRootLogin" in galena["metadataStartupScript"]
    firewalls = {f.name: f for f in graph.of_type(GCP_FIREWALL)}
    assert set(firewalls) == {"fleet-ssh", "fleet-zerotier"}
    assert firewalls["fleet-ssh"].inputs["allows"] == [{"protocol": "tcp", "ports": ["22"]}]
    assert firewalls["fleet-zerotier"].inputs["allows"] == [{"protocol": "udp", "ports": ["9993"]}]
    for f in firewalls.values():
        assert f.inputs["targetTags"] == galena["tags"]
        assert f.urn in graph.one(INSTANCE, "galena").dependencies


def test_darwin_machines_have_no_cloud_resources(prod: Fleet, settings: StackSettings) -> None:
    graph = plan(prod, settings)
    for name in ("stibnite", "blackphos", "rosegold", "argentum"):
        machine = graph.one("fleet:index:Machine", name)
        assert graph.descendants(machine.urn) == []
    assert not any(r.name in ("stibnite", "blackphos", "rosegold", "argentum") and r.custom for r in graph.resources)


def test_children_are_parented_and_typed_under_the_fleet(prod: Fleet, settings: StackSettings) -> None:
    graph = plan(prod, settings)
    fleet = graph.one("fleet:index:Fleet", "fleet")
    assert fleet.parent is None
    assert {r.urn for r in graph.descendants(fleet.urn)} == {r.urn for r in graph.resources} - {fleet.urn}
    for r in graph.resources:
        if not r.custom:
            assert r.type.startswith("fleet:") and r.type.count(":") == 2
    server = graph.one(SERVER, "cinnabar")
    assert server.urn == (
        "urn:pulumi:prod::fleet::fleet:index:Fleet$fleet:index:Machine$hcloud:index/server:Server::cinnabar"
    )


def test_preview_and_up_register_the_same_resources(prod: Fleet, settings: StackSettings) -> None:
    preview, up = plan(prod, settings, preview=True), plan(prod, settings, preview=False)
    assert [r.urn for r in preview.resources] != []
    assert sorted(r.urn for r in preview.resources) == sorted(r.urn for r in up.resources)
    for before in preview.resources:
        after = up.by_urn()[before.urn]
        assert before.dependencies == after.dependencies and before.options == after.options
    # preview shows addresses as unknown; up has them
    assert preview.outputs["machines"]["cinnabar"] == {
        "ipv4": COMPUTED,
        "ipv6": COMPUTED,
        "install": COMPUTED,  # the install step's result: adopted or installed
        "host_key_fingerprint": COMPUTED,
        "reinstall_required": False,
    }
    machines = up.outputs["machines"]
    assert set(machines) == {"cinnabar", "electrum", "magnetite", "galena", "scheelite"}
    assert machines["cinnabar"]["ipv4"].startswith("192.0.2.") and machines["cinnabar"]["ipv6"].startswith("2001:db8:")
    assert machines["scheelite"]["ipv4"].startswith("198.51.100.") and "ipv6" not in machines["scheelite"]
    # hcloud wants integer firewall ids: the graph converts the string id
    assert up.one(SERVER, "cinnabar").inputs["firewallIds"] == [int(up.one(HZ_FIREWALL, "fleet").id)]  # type: ignore[arg-type]


@pytest.mark.parametrize("disabled", ["cinnabar", "electrum", "scheelite", "stibnite"])
def test_disabling_a_machine_removes_exactly_its_cloud_resources(disabled: str, settings: StackSettings) -> None:
    everyone = prod_everyone()
    enabled = [n for n in everyone.names if n != disabled]
    fewer = prod_fleet([f"fleet:enabled={enabled}".replace("'", '"')])
    assert not fewer.machine(disabled).enabled
    full, partial = plan(everyone, settings), plan(fewer, settings)
    removed = {r.urn for r in full.resources} - {r.urn for r in partial.resources}
    machine = full.one("fleet:index:Machine", disabled)
    # its cloud resources, the install step that acted on its server, and its ZeroTier admission
    # (whose delete deauthorizes it; the controller has none)
    admission = {r.urn for r in full.resources if r.name == f"zerotier-admit-{disabled}"}
    assert (
        removed
        == {r.urn for r in full.descendants(machine.urn) if r.type in CLOUD_TYPES or r.name == f"{disabled}-install"}
        | admission
    )
    # the machine keeps its spec and its vars step
    assert {r.name for r in partial.descendants(machine.urn)} == (
        {f"{disabled}-vars"} if disabled != "stibnite" else set()
    )
    assert {r.urn for r in partial.resources} <= {r.urn for r in full.resources}


def test_shared_cloud_resources_go_with_the_last_machine_of_a_cloud(settings: StackSettings) -> None:
    graph = plan(prod_fleet(['fleet:enabled=["galena"]']), settings)
    types = {r.type for r in graph.resources if r.custom}
    assert types == {INSTANCE, GCP_FIREWALL, "command:local:Command", "pulumi:providers:gcp"}
    graph = plan(prod_fleet(["fleet:enabled=[]", "fleet:allowEmpty=true"]), settings)
    assert not any(r.type in CLOUD_TYPES for r in graph.resources)
    assert graph.log == []  # no deploy key needed without cloud machines


def test_without_a_deploy_key_generator_the_key_file_is_read(prod: Fleet, tmp_path: Path, fleet_repo: Path) -> None:
    # a fleet whose machines declare no deploy-key generator reads the key from the repository
    bare = prod.model_copy(
        update={"machines": tuple(m.model_copy(update={"generators": ()}) for m in prod.machines), "instances": ()}
    )
    graph = plan(bare, prod_settings(fleet_repo))
    public = (fleet_repo / "vars/shared/deploy-key/id_ed25519.pub/value").read_text().strip()
    assert graph.one(SSH_KEY, "fleet-deploy").inputs["publicKey"] == public
    # no vars steps: only the installs of the cloud machines (which read the keys from the repository)
    assert {r.name for r in graph.of_type("command:local:Command")} == {
        f"{m.name}-install" for m in bare.machines if m.enabled and m.cloud and m.disks is not None
    }
    # no provider secrets configured: the missing deploy key is what stops `up`
    settings = StackSettings.from_values({"fleet:repo": str(tmp_path), "fleet:cloudflareZone": "example.net"}, PROJECT)
    graph = plan(bare, settings, preview=True)
    assert any("deploy key" in message and "fleet vars generate" in message for _, message in graph.log)
    assert graph.one(SSH_KEY, "fleet-deploy").inputs.get("publicKey", COMPUTED) == COMPUTED
    with pytest.raises(DeployKeyMissingError, match="fleet vars generate"):
        recorded_graph(lambda: deploy_fleet(bare, settings), preview=False)


def test_the_project_program_reads_stack_config(fleet_repo: Path) -> None:
    config = prod_config(**{"fleet:repo": str(fleet_repo), "fleet:enabled": '["electrum"]'})
    graph = recorded_graph(lambda: run_program(PROJECT), stack="prod", config=config)
    assert [r.name for r in graph.of_type(SERVER)] == ["electrum"]
    with pytest.raises(pulumi.RunError, match="'ghost'"):
        recorded_graph(lambda: run_program(PROJECT), stack="prod", config=prod_config(**{"fleet:enabled": '["ghost"]'}))


def test_a_recorded_graph_closes_every_event_loop_it_made(
    prod: Fleet, settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pulumi's mock monitor makes a loop on each executor thread; left open, they were finalized at
    interpreter exit and `fleet plan` printed an "Exception ignored" traceback now and then."""
    import asyncio.base_events
    import weakref

    made: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    init = asyncio.base_events.BaseEventLoop.__init__

    def tracking_init(self: asyncio.base_events.BaseEventLoop) -> None:
        init(self)
        made.append(weakref.ref(self))

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "__init__", tracking_init)
    recorded_graph(lambda: deploy_fleet(prod, settings))
    loops = [ref() for ref in made]
    assert len(made) >= 2  # the graph's own loop and the executor threads' ones
    assert all(loop is None or loop.is_closed() for loop in loops)


def test_gcp_instances_keep_protect_and_ignore_changes(settings: StackSettings) -> None:
    from fleet_sdk.spec import GcpHost, Machine

    machines = (
        Machine(name="keep", host=GcpHost(machine_type="e2-standard-2", zone="us-central1-b", protect=True)),
        Machine(name="scratch", host=GcpHost(machine_type="e2-standard-2", zone="us-central1-b")),
    )
    graph = plan(Fleet(name="fleet", machines=machines), settings, preview=False)
    for name, protected in (("keep", True), ("scratch", False)):
        instance = graph.one(INSTANCE, name)
        assert instance.options["protect"] is protected
        assert instance.inputs["deletionProtection"] is protected
        # changing either would replace (wipe) an installed machine
        assert sorted(instance.options["ignore_changes"]) == ["bootDisk", "metadataStartupScript"]


def test_every_command_the_graph_builds_is_plain_argv_after_quoting(prod: Fleet, settings: StackSettings) -> None:
    """Commands reach a shell: each must split into the words it was built from, with no shell syntax
    left (the only expansions are the step environment's "$FLEET_…" variables)."""
    import re
    import shlex

    graph = plan(prod, settings, preview=False)
    commands = graph.of_type("command:local:Command")
    assert len(commands) > 10
    for command in commands:
        words = shlex.split(command.inputs["create"])
        assert words[:3] == ["$FLEET_PYTHON", "-m", "fleet_sdk"], command.name
        for word in words[3:]:
            assert re.fullmatch(r"[A-Za-z0-9@._:/=\[\]-]+|\$FLEET_(REPO|PROJECT)", word), (command.name, word)
    admit = next(c for c in commands if c.name == "zerotier-controller")
    assert "--target-host" in shlex.split(admit.inputs["create"])
