"""Adopting servers that already run: HetznerHost(server_id=…) and GcpHost(instance_id=…) are checked
at spec time, naming the machine, and the graph registers the adopted server with Pulumi's `import`
option (and keeps what a server made by other tools differs in as it is) instead of creating it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
from typing_extensions import override

from fleet_sdk.cli import main
from fleet_sdk.errors import SpecError
from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph.offline import FleetMocks
from fleet_sdk.review import plan as planning
from fleet_sdk.spec import Fleet, GcpHost, HetznerHost, Machine
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import RecordedGraph, recorded_graph

SERVER = "hcloud:index/server:Server"
INSTANCE = "gcp:compute/instance:Instance"
GALENA = "projects/example-project-4711/zones/us-central1-b/instances/galena"


class ImportMocks(FleetMocks):
    """The offline runtime, noting the import id each resource is registered with (`import_`)."""

    def __init__(self, preview: bool) -> None:
        super().__init__(preview)
        self.imports: dict[tuple[str, str], str | None] = {}

    @override
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.imports[(args.typ, args.name)] = args.resource_id or None
        return super().new_resource(args)


def adopted(prod: Fleet, **hosts: dict[str, Any]) -> Fleet:
    """The prod fleet with some hosts' fields replaced (e.g. cinnabar={"server_id": 42})."""
    machines = []
    for m in prod.machines:
        if m.name in hosts:
            assert m.host is not None
            m = m.model_copy(update={"host": m.host.model_copy(update=hosts[m.name])})
        machines.append(m)
    return prod.model_copy(update={"machines": tuple(machines)})


def record(fleet: Fleet, settings: StackSettings, preview: bool = True) -> tuple[RecordedGraph, ImportMocks]:
    mocks = ImportMocks(preview)
    graph = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=preview, stack="prod", mocks=mocks)
    return graph, mocks


# the spec


@pytest.mark.parametrize(("given", "kept"), [(60000011, 60000011), ("60000011", 60000011), ("007", 7), (None, None)])
def test_a_hetzner_server_id_is_a_positive_integer(given: object, kept: int | None) -> None:
    host = HetznerHost(server_type="cx22", location="fsn1", server_id=given)
    assert host.server_id == kept
    assert host.import_id == (None if kept is None else str(kept))
    Machine(name="web", host=host)  # accepted


@pytest.mark.parametrize(
    ("given", "shown"),
    [("abc", "'abc' is not a number"), ("-1", "'-1' is not a number"), ("1.5", "'1.5' is not a number"),
     (1.5, "'1.5' is not a number"), (True, "'True' is not a number"), ("", "'' is not a number"),
     (" 42", "' 42' is not a number"), (0, "0 is not a server id"), (-1, "-1 is not a server id"),
     (2**63, f"{2**63} is not a server id")],
)  # fmt: skip
def test_a_bad_server_id_is_refused_naming_the_machine(given: object, shown: str) -> None:
    with pytest.raises(SpecError) as e:
        Machine(name="web", host=HetznerHost(server_type="cx22", location="fsn1", server_id=given))
    assert e.value.problems == [
        f"machine 'web': host.server_id: {shown}: Hetzner server ids are positive integers "
        "(the ID column of `hcloud server list`)"
    ]


@pytest.mark.parametrize(
    "given",
    [
        GALENA,
        "example-project-4711/us-central1-b/galena",
        f"https://www.googleapis.com/compute/v1/{GALENA}",
        f"https://compute.googleapis.com/compute/v1/{GALENA}",
        "example.com:example-project/us-central1-b/galena",
    ],
)
def test_a_gce_instance_id_is_read_as_the_path_pulumi_imports(given: str) -> None:
    host = GcpHost(machine_type="e2-standard-8", zone="us-central1-b", instance_id=given)
    Machine(name="galena", host=host)
    project = "example.com:example-project" if "example.com" in given else "example-project-4711"
    assert host.instance_id == host.import_id == f"projects/{project}/zones/us-central1-b/instances/galena"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("1234567890123456789", "is GCE's numeric instance id, which Pulumi cannot import"),
        ("galena", "is not projects/<project>/zones/<zone>/instances/<name>"),
        ("projects/p/zones/us-central1-b/galena", "is not projects/<project>/zones/<zone>/instances/<name>"),
        ("Bad_Project/us-central1-b/galena", "'Bad_Project' is not a Google Cloud project id"),
        ("example-project-4711/us-central1-f/galena", "the instance is in zone us-central1-f, but host.zone is"),
        ("example-project-4711/us-central1-b/other", "the instance is named 'other', but the machine 'galena'"),
    ],
)
def test_a_bad_instance_id_is_refused_naming_the_machine(given: str, shown: str) -> None:
    with pytest.raises(SpecError) as e:
        Machine(name="galena", host=GcpHost(machine_type="e2-standard-8", zone="us-central1-b", instance_id=given))
    assert len(e.value.problems) == 1
    assert e.value.problems[0].startswith("machine 'galena': host.instance_id: ")
    assert shown in e.value.problems[0]


def test_the_plan_summary_says_which_server_is_adopted() -> None:
    assert HetznerHost(server_type="cx22", location="fsn1", server_id=7).summary == (
        "hetzner cx22 fsn1 (adopts server 7)"
    )
    gcp = GcpHost(machine_type="e2-standard-8", zone="us-central1-b", instance_id=GALENA)
    assert gcp.summary == f"gcp e2-standard-8 us-central1-b (adopts {GALENA})"


# the graph


@pytest.mark.parametrize("preview", [True, False])
def test_only_the_adopted_servers_carry_the_import_option(prod: Fleet, settings: StackSettings, preview: bool) -> None:
    fleet = adopted(prod, cinnabar={"server_id": 60000011}, galena={"instance_id": GALENA})
    graph, mocks = record(fleet, settings, preview)
    assert mocks.imports[(SERVER, "cinnabar")] == "60000011"
    assert mocks.imports[(INSTANCE, "galena")] == GALENA
    # the others are created, as every other resource of the graph
    others = {
        key: value for key, value in mocks.imports.items() if key not in {(SERVER, "cinnabar"), (INSTANCE, "galena")}
    }
    assert others and set(others.values()) == {None}
    # what a server made by other tools differs in stays as it is while adopted; protect as declared
    cinnabar = graph.one(SERVER, "cinnabar").options
    assert cinnabar["import"] == "60000011" and graph.one(INSTANCE, "galena").options["import"] == GALENA
    assert "import" not in graph.one(SERVER, "magnetite").options  # what `fleet plan --json` shows
    assert cinnabar["protect"] is True
    assert cinnabar["ignore_changes"] == sorted(
        ["sshKeys", "userData", "image", "labels", "firewallIds", "deleteProtection", "rebuildProtection"]
    )
    for name, protected in (("magnetite", True), ("electrum", False)):
        options = graph.one(SERVER, name).options
        assert options["ignore_changes"] == ["sshKeys", "userData"] and options["protect"] is protected
    galena = graph.one(INSTANCE, "galena").options
    assert galena["protect"] is False
    assert galena["ignore_changes"] == sorted(
        [
            "bootDisk",
            "metadataStartupScript",
            "metadata",
            "tags",
            "labels",
            "deletionProtection",
            "allowStoppingForUpdate",
        ]
    )
    assert graph.one(INSTANCE, "scheelite").options["ignore_changes"] == ["bootDisk", "metadataStartupScript"]


def test_an_adopted_server_keeps_its_inputs_and_dependencies(prod: Fleet, settings: StackSettings) -> None:
    """Adopting changes the options only: the server is declared as any other, so once imported (and
    server_id removed) the next `pulumi up` brings it to what the stack declares."""
    before, _ = record(prod, settings)
    after, _ = record(adopted(prod, cinnabar={"server_id": "60000011"}), settings)
    old, new = before.one(SERVER, "cinnabar"), after.one(SERVER, "cinnabar")
    assert (new.urn, new.parent, new.inputs, new.dependencies) == (old.urn, old.parent, old.inputs, old.dependencies)
    assert sorted(r.urn for r in after.resources) == sorted(r.urn for r in before.resources)


# the CLI


def write_project(root: Path, host: str) -> Path:
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text("config:\n  fleet:flake: .\n")
    (root / "stacks" / "dev.py").write_text(
        "from fleet_sdk.spec import *\n"
        "def build(settings):\n"
        f"    return Fleet(name='demo', machines=(Machine(name='web', host={host}),))\n"
    )
    return root


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (
            "HetznerHost(server_type='cx22', location='fsn1', server_id='abc')",
            "error: machine 'web': host.server_id: 'abc' is not a number: Hetzner server ids are positive integers",
        ),
        (
            "HetznerHost(server_type='cx22', location='fsn1', server_id=-1)",
            "error: machine 'web': host.server_id: -1 is not a server id",
        ),
        (
            "GcpHost(machine_type='e2-standard-8', zone='us-central1-b', instance_id='4711')",
            "error: machine 'web': host.instance_id: '4711' is GCE's numeric instance id",
        ),
    ],
)
def test_fleet_plan_refuses_a_bad_id_naming_the_machine(
    host: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = write_project(tmp_path / "project", host)

    def no_graph(*args: object, **kwargs: object) -> None:
        raise AssertionError("a resource was about to be registered")

    monkeypatch.setattr(planning, "recorded_graph", no_graph)
    assert main(["plan", "--project", str(project), "--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert "Traceback" not in err
