"""The plan document's `fleet-plan/2` additions: per machine `disko`, `generators` and `zerotier`,
per resource `subject` (the machine a shared step acts on, registered by the graph)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.graph import deploy_fleet
from fleet_sdk.graph.offline import RecordedResource, recorded_graph
from fleet_sdk.graph.steps import collect_subjects
from fleet_sdk.install.records import layout_digest
from fleet_sdk.review import document
from fleet_sdk.review import plan as planning
from fleet_sdk.spec import Fleet, Machine, Role, ServiceInstance
from fleet_sdk.vars.store import VarsStore, generator_id

from .conftest import PROJECT, prod_fleet, prod_settings

ADMIT = "command:local:Command"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fleet repository holding one generator: cinnabar's state-version."""
    root = tmp_path_factory.mktemp("fleet-repo")
    value = root / "vars/per-machine/cinnabar/state-version/version/value"
    value.parent.mkdir(parents=True)
    value.write_bytes(b"25.05")
    return root


@pytest.fixture(scope="module")
def plan(repo: Path) -> planning.Plan:
    return planning.make_plan(PROJECT, "prod", repo=repo)


@pytest.fixture(scope="module")
def doc(plan: planning.Plan) -> dict[str, Any]:
    return plan.document


def registered(r: RecordedResource) -> str:
    """What the engine receives of a resource (its mock state holds unknowns that compare unequal)."""
    return json.dumps([r.urn, r.type, r.parent, r.custom, r.dependencies, r.inputs, r.options], sort_keys=True)


def resource(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in doc["resources"] if r["name"] == name)


def test_the_document_names_its_schema_and_keeps_every_earlier_key(doc: dict[str, Any]) -> None:
    assert doc["schema"] == "fleet-plan/2"
    assert set(doc) == {"schema", "project", "stack", "machines", "resources", "outputs", "cost"}
    assert set(doc["machines"]["cinnabar"]) == {
        *("class", "enabled", "tags", "target_host", "resources", "system", "install"),
        *("disko", "generators", "zerotier", "cost"),
    }
    assert "install" not in doc["machines"]["argentum"]  # darwin: no install, as before
    assert all(set(r) >= {"urn", "machine", "inputs", "options", "subject"} for r in doc["resources"])


def test_disko_is_the_installed_digest_and_the_sgdisk_table_of_the_host_disk(doc: dict[str, Any]) -> None:
    fleet = prod_fleet()
    cinnabar = doc["machines"]["cinnabar"]
    layout = fleet.machine("cinnabar").disks
    assert layout is not None
    assert cinnabar["disko"]["digest"] == layout_digest(layout.render()) == cinnabar["install"]["layout"]
    table = [
        (p["disk"], p["number"], p["name"], p["label"], p["type"], p["sectors"])
        for p in cinnabar["disko"]["partitions"]
    ]
    # as `fleet disko check` prints it for the cx43's 160 GB disk
    assert table == [
        ("main", 1, "boot", "disk-main-boot", "EF02", [2048, 4095]),
        ("main", 2, "grub", "disk-main-grub", "8300", [4096, 2101247]),
        ("main", 3, "zfs", "disk-main-zfs", "8300", [2101248, 312498175]),
    ]
    assert cinnabar["disko"]["partitions"][1]["bytes"] == 2**30
    assert [(p["start"], p["end"]) for p in cinnabar["disko"]["partitions"]] == [
        ("0", "+1M"),
        ("0", "+1G"),
        ("0", "-0"),
    ]
    # the same layout on magnetite's larger disk: only the last partition grows
    assert doc["machines"]["magnetite"]["disko"]["partitions"][2]["sectors"] == [2101248, 624998399]
    # pyrite has no host to tell its disk size: the partitions without sectors
    pyrite = doc["machines"]["pyrite"]["disko"]["partitions"]
    assert [(p["name"], p["type"], p["sectors"], p["bytes"]) for p in pyrite] == [
        ("ESP", "EF00", None, None),
        ("zfs", "8300", None, None),
    ]
    assert doc["machines"]["argentum"]["disko"] == {"digest": None, "partitions": []}


def test_generators_are_the_machines_own_with_what_the_repository_holds(doc: dict[str, Any]) -> None:
    fleet = prod_fleet()
    gens = doc["machines"]["cinnabar"]["generators"]
    assert [g["name"] for g in gens] == [g.name for g in fleet.generators_of("cinnabar")]
    by_name = {g["name"]: g for g in gens}
    assert by_name["zerotier-identity-cinnabar"]["share"] is True and by_name["openssh"]["share"] is False
    assert [g["name"] for g in gens if g["stored"]] == ["state-version"]
    # magnetite's state-version is its own (per machine): not stored
    assert {g["name"]: g["stored"] for g in doc["machines"]["magnetite"]["generators"]}["state-version"] is False
    assert "zfs" in {g["name"] for g in doc["machines"]["pyrite"]["generators"]}


def test_stored_is_clans_exists_read_without_decrypting(tmp_path: Path) -> None:
    fleet = prod_fleet()
    machine = fleet.machine("magnetite")
    cert = next(g for g in fleet.generators_of(machine) if g.name == "openssh-cert")
    store = VarsStore(tmp_path)
    folder = store.dir(generator_id(cert, "magnetite"))
    (folder / "ssh.id_ed25519-cert.pub").mkdir(parents=True)
    (folder / "ssh.id_ed25519-cert.pub/value").write_text("ssh-ed25519-cert-v01@openssh.com AAAA\n")

    def stored() -> object:
        return {g["name"]: g["stored"] for g in document.generators(fleet, machine, store)}["openssh-cert"]

    assert stored() is False  # every file, but no validation hash: clan regenerates it
    assert cert.validation_hash is not None
    (folder / ".validation-hash").write_text(cert.validation_hash)
    assert stored() is True
    (folder / ".validation-hash").write_text("0" * 64)
    assert stored() is False
    assert all(g["stored"] is None for g in document.generators(fleet, machine, None))


def test_zerotier_gives_each_member_its_role(doc: dict[str, Any]) -> None:
    roles = {name: m["zerotier"] for name, m in doc["machines"].items()}
    assert roles["cinnabar"] == {"zerotier": "controller"}
    assert roles["magnetite"] == roles["pyrite"] == {"zerotier": "peer"}
    assert roles["electrum"] == {"zerotier": "peer"}  # disabled machines stay members
    assert roles["argentum"] == {}  # the workstations join by address, not as machines of the fleet


def test_a_machine_in_two_roles_is_listed_with_the_stronger() -> None:
    fleet = Fleet(
        name="lab",
        machines=(Machine(name="a", tags=("peer",)), Machine(name="b", tags=("peer",))),
        instances=(
            ServiceInstance(
                name="net", module="zerotier", roles={"controller": Role(machines=("a",)), "peer": Role(tags=("peer",))}
            ),
        ),
    )
    roles = document.ZeroTierRoles(fleet)
    assert (roles.of("a"), roles.of("b")) == ({"net": "controller"}, {"net": "peer"})


def test_subject_is_the_machine_a_shared_step_acts_on(doc: dict[str, Any]) -> None:
    assert resource(doc, "zerotier-admit-magnetite")["subject"] == "magnetite"
    # electrum is disabled in the prod stack: deauthorized, not admitted (issue 17)
    assert not any(r["name"] == "zerotier-admit-electrum" for r in doc["resources"])
    # not derivable from its name: the controller's configuration step runs on cinnabar
    controller = resource(doc, "zerotier-controller")
    assert (controller["machine"], controller["subject"]) == (None, "cinnabar")
    # a member admitted by address is no machine of the fleet
    assert resource(doc, "zerotier-admit-0ee971d9e0")["subject"] is None
    assert resource(doc, "fleet-deploy")["subject"] is None  # the shared SSH key acts on none
    assert all(r["subject"] is None for r in doc["resources"] if r["machine"] is not None)
    shared = {r["name"] for r in doc["resources"] if r["subject"]}
    # the enabled NixOS peers admitted (magnetite, pyrite; electrum, galena and scheelite are off), one
    # controller step
    assert len(shared) == 3


def test_subjects_reach_pulumi_nowhere(repo: Path) -> None:
    """The subject is bookkeeping of the plan: the graph Pulumi sees is the same with and without
    the collector, so no input changes and no step re-runs on a stack."""
    fleet, settings = prod_fleet(), prod_settings(repo)
    plain = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=True, project="fleet", stack="prod")
    with collect_subjects() as subjects:
        collected = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=True, project="fleet", stack="prod")
    assert sorted(map(registered, collected.resources)) == sorted(map(registered, plain.resources))
    network = "urn:pulumi:prod::fleet::fleet:index:Fleet$fleet:zerotier:Network"
    assert subjects[f"{network}$command:local:Command::zerotier-controller"] == "cinnabar"
    admit = plain.one(ADMIT, "zerotier-admit-magnetite")
    assert "magnetite" not in str(admit.options)  # nothing of it in the options either


def test_plan_document_without_subjects_gives_null() -> None:
    fleet, settings = prod_fleet(), prod_settings(Path("/nonexistent"))
    graph = recorded_graph(lambda: deploy_fleet(fleet, settings), preview=True, project="fleet", stack="prod")
    doc = planning.plan_document(fleet, graph)
    assert all(r["subject"] is None for r in doc["resources"])
    assert doc["machines"]["cinnabar"]["zerotier"] == {"zerotier": "controller"}
    assert all(g["stored"] is None for g in doc["machines"]["cinnabar"]["generators"])


def test_the_text_names_the_machine_a_shared_step_acts_on(plan: planning.Plan) -> None:
    lines = planning.render_text(plan).splitlines()
    assert any(line.endswith("zerotier-controller (acts on cinnabar)") for line in lines)
    assert any(line.endswith("zerotier-admit-0ee971d9e0") for line in lines)  # a member by address
