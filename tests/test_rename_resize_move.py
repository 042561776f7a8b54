"""Renames, resizes and moves in the offline diff (issue 17, item 3), as Pulumi would apply them: a
server kept through an alias or updated in place keeps its id, so its install step (triggered by the
id) does not run again; a resize is an update that powers the server off and on (`reboot`); a move to
another location or zone replaces the server, installs it again and is a `wipe`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.review import plan as planning
from fleet_sdk.review.diff import diff_plans
from fleet_sdk.review.markdown import render_markdown

from .conftest import PROJECT
from .test_machine_rename import RENAMABLE, plan
from .test_plan_diff import SERVER, write_demo

INSTANCE = "gcp:compute/instance:Instance"
# electrum (unprotected, Hetzner) and galena (GCP) enabled besides the machines prod runs
ENABLED = ("cinnabar", "magnetite", "electrum", "galena", "pyrite")


@pytest.fixture(scope="module")
def renamable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory.mktemp("rename") / "project", RENAMABLE)


def changes_of(diff: dict[str, Any], machine: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in diff["machines"][machine]["changes"]}


def test_a_renamed_server_keeps_its_id_so_its_install_is_not_run_again(renamable: Path) -> None:
    diff = diff_plans(plan(renamable), plan(renamable, "demo:webName=www", 'demo:renamedFrom=["web"]'))
    changes = changes_of(diff, "www")
    assert changes["www"]["op"] == "update" and changes["www"]["unknown"] == []
    install = changes["www-install"]
    # its trigger is the kept server's id: unchanged, nothing known only after apply. It is an update
    # (not same) because its command lines name the machine; pulumi-command runs `create` again on an
    # update, and that run adopts the server it finds running the machine, wiping nothing.
    assert install["op"] == "update", install
    assert install["replace_reasons"] == [] and install["unknown"] == []
    assert install["paths"] and all(
        p["path"] in ("create", "delete") and " web " in p["old"] and " www " in p["new"] for p in install["paths"]
    )
    assert "wipe" not in diff["machines"]["www"]["danger"]


# --- the prod stack with machines edited as an edited stacks/prod.py would give them ---


@cache
def prod(edits: str = "{}") -> dict[str, Any]:
    """The prod plan with ENABLED on and `edits` ({machine: {host field: value}}, JSON) applied."""
    changes = json.loads(edits)
    load = planning.load_stack

    def edited(*args: Any, **kwargs: Any) -> Any:
        config, settings, fleet = load(*args, **kwargs)
        machines = tuple(
            m.model_copy(update={"host": m.host.model_copy(update=changes[m.name])}) if m.name in changes else m
            for m in fleet.machines
        )
        return config, settings, fleet.model_copy(update={"machines": machines})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(planning, "load_stack", edited)
        return planning.make_plan(PROJECT, "prod", ["fleet:enabled=" + json.dumps(list(ENABLED))]).document


def diff_with(**edits: dict[str, Any]) -> dict[str, Any]:
    return diff_plans(prod(), prod(json.dumps(edits, sort_keys=True)))


@pytest.fixture(scope="module", autouse=True)
def _forget_plans() -> Iterator[None]:
    yield
    prod.cache_clear()


def test_a_hetzner_resize_is_an_update_that_reboots_and_does_not_reinstall() -> None:
    diff = diff_with(electrum={"server_type": "ccx33"})
    entry = diff["machines"]["electrum"]
    server = changes_of(diff, "electrum")["electrum"]
    assert server["type"] == SERVER and server["op"] == "update" and server["replace_reasons"] == []
    assert server["paths"] == [{"path": "serverType", "kind": "update", "old": "ccx23", "new": "ccx33"}]
    assert "powered off and on" in server["note"] and "smaller disk" in server["note"]
    assert entry["danger"] == ["reboot"]
    # the install, its DNS records and everything else stay: the server keeps its id and addresses
    assert set(changes_of(diff, "electrum")) == {"electrum"}
    assert {m for m, e in diff["machines"].items() if e["status"] != "unchanged"} == {"electrum"}
    markdown = render_markdown(diff)
    assert "|electrum|`~` serverType (reboot)|" in markdown and "powered off and on" in markdown
    assert "> ✅ no machine is wiped" in markdown and "⚠️ wipe" not in markdown


def test_a_hetzner_move_replaces_the_server_reinstalls_it_and_is_a_wipe() -> None:
    diff = diff_with(electrum={"location": "nbg1"})
    entry, changes = diff["machines"]["electrum"], changes_of(diff, "electrum")
    assert changes["electrum"]["op"] == "replace" and changes["electrum"]["replace_reasons"] == ["location"]
    install = changes["electrum-install"]  # a new server, a new id: installed again
    assert install["op"] == "replace" and install["replace_reasons"] == ["triggers[0]"]
    assert set(install["unknown"]) == {"create", "triggers[0]"}
    for record in ("electrum-a", "electrum-aaaa"):  # its new addresses; the zone stays
        assert (changes[record]["op"], changes[record]["unknown"]) == ("update", ["content"])
    assert "wipe" in entry["danger"] and "reboot" not in entry["danger"]
    assert "> ⚠️ wipe: `electrum`" in render_markdown(diff)


def test_a_gcp_machine_type_change_stops_the_instance_and_keeps_its_install() -> None:
    diff = diff_with(galena={"machine_type": "e2-standard-16"})
    entry, changes = diff["machines"]["galena"], changes_of(diff, "galena")
    instance = changes["galena"]
    assert instance["type"] == INSTANCE and instance["op"] == "update" and instance["replace_reasons"] == []
    assert [p["path"] for p in instance["paths"]] == ["machineType"] and "stopped and started" in instance["note"]
    assert entry["danger"] == ["reboot"]
    # its id stays (the install's trigger), its ephemeral address does not: the install's command line,
    # which names the address, is known after apply, and the re-run adopts the machine
    install = changes["galena-install"]
    assert (install["op"], install["replace_reasons"], install["unknown"]) == ("update", [], ["create"])


def test_a_gcp_zone_change_replaces_the_instance_and_is_a_wipe() -> None:
    diff = diff_with(galena={"zone": "us-central1-c"})
    entry, changes = diff["machines"]["galena"], changes_of(diff, "galena")
    assert changes["galena"]["op"] == "replace" and "zone" in changes["galena"]["replace_reasons"]
    assert changes["galena-install"]["op"] == "replace"
    assert "wipe" in entry["danger"]


def test_a_plan_without_property_dependencies_keeps_the_older_estimate() -> None:
    """A base planned before `property_dependencies` were recorded: any created or replaced
    dependency makes a computed input unknown, as before."""
    old, new = prod(), prod(json.dumps({"electrum": {"server_type": "ccx33"}}))
    stripped = {
        **new,
        "resources": [{k: v for k, v in r.items() if k != "property_dependencies"} for r in new["resources"]],
    }
    assert changes_of(diff_plans(old, stripped), "electrum") == changes_of(diff_plans(old, new), "electrum")
    moved = prod(json.dumps({"electrum": {"location": "nbg1"}}))
    bare = {
        **moved,
        "resources": [{k: v for k, v in r.items() if k != "property_dependencies"} for r in moved["resources"]],
    }
    install = changes_of(diff_plans(old, bare), "electrum")["electrum-install"]
    assert install["op"] == "replace"


def renamed_prod(old: str, new: str) -> dict[str, Any]:
    """The prod plan with ENABLED on and machine `old` renamed `new` with renamed_from."""
    load = planning.load_stack

    def edited(*args: Any, **kwargs: Any) -> Any:
        config, settings, fleet = load(*args, **kwargs)
        machines = tuple(
            m.model_copy(update={"name": new, "renamed_from": (old,)}) if m.name == old else m for m in fleet.machines
        )
        return config, settings, fleet.model_copy(update={"machines": machines})

    with pytest.MonkeyPatch.context() as patch:  # enabled by its old name, then renamed
        patch.setattr(planning, "load_stack", edited)
        return planning.make_plan(PROJECT, "prod", ["fleet:enabled=" + json.dumps(list(ENABLED))]).document


def test_a_renamed_gcp_machine_keeps_its_instance_and_its_name() -> None:
    """A GCE instance's name cannot change in place (a new name is a new instance): the renamed
    machine's instance keeps the name it has, so it is kept, not replaced."""
    diff = diff_plans(prod(), renamed_prod("galena", "galena2"))
    changes = changes_of(diff, "galena2")
    instance = changes["galena2"]
    assert instance["type"] == INSTANCE and instance["op"] == "update" and instance["replace_reasons"] == []
    assert "name" not in {p["path"] for p in instance["paths"]}
    assert changes["galena2-install"]["op"] != "replace"
    assert "wipe" not in diff["machines"]["galena2"]["danger"]
