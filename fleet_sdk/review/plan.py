"""`fleet plan`: the stack program under the mock runtime, as one stable document.

The document (DESIGN §5, `"schema": "fleet-plan/2"`) has sorted keys and no timestamps, so two plans
diff cleanly in review. Each machine's `system` is what the closure probe (fleet_sdk.deploy.probe)
finds for the machines `fleet machine deploy` deploys: {drvPath, outPath}, or {unknown: reason}; its
`disko`, `generators` and `zerotier` come from the spec, the flake (generators it declares,
vars.declared) and the repository (review.document). Each resource's `subject` is the machine a
shared step acts on, as the graph registered it (graph.steps.acts_on), null for the others; its
`property_dependencies`, per input, the resources whose outputs feed it (so the diff tells a kept
server's id from a new one's). Each machine's `cost` and the document's `cost` are its monthly cost
at the catalog's list prices (review.cost).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet_sdk.deploy.probe import Probed, Unknown, probe_stack
from fleet_sdk.disko import rendered
from fleet_sdk.errors import DuplicateUrnError, SpecError
from fleet_sdk.graph.offline import RecordedGraph, recorded_graph
from fleet_sdk.graph.steps import collect_subjects
from fleet_sdk.install.records import install_state
from fleet_sdk.review import cost as costs
from fleet_sdk.review.document import SCHEMA, machine_additions
from fleet_sdk.spec import Fleet
from fleet_sdk.stack.settings import StackSettings, load_stack
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars.declared import declared_fleet

MACHINE_TYPE = "fleet:index:Machine"


@dataclass
class Plan:
    fleet: Fleet
    document: dict[str, Any]
    warnings: list[str]

    def to_json(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=True) + "\n"


def machine_of(graph: RecordedGraph) -> dict[str, str | None]:
    """URN -> the machine whose component it is or lies under (None for shared resources)."""
    by_urn = graph.by_urn()
    owner: dict[str, str | None] = {}
    for r in graph.resources:
        node: str | None = r.urn
        found = None
        while node is not None and node in by_urn:
            if by_urn[node].type == MACHINE_TYPE:
                found = by_urn[node].name
                break
            node = by_urn[node].parent
        owner[r.urn] = found
    return owner


def machine_systems(fleet: Fleet, settings: StackSettings, runner: Runner = LOCAL) -> dict[str, Probed]:
    """Each machine's system: probed (all at once) for those `fleet machine deploy` deploys, enabled
    and with a target host; for the others, why not."""
    deployed = {m.name: m.machine_class for m in fleet.machines if m.enabled and m.target_host}
    found = probe_stack(runner, settings, deployed)
    for m in fleet.machines:
        if m.name not in found:
            found[m.name] = Unknown(m.name, "not deployed: " + ("disabled" if not m.enabled else "no target_host"))
    return {m.name: found[m.name] for m in fleet.machines}


def plan_document(
    fleet: Fleet,
    graph: RecordedGraph,
    systems: Mapping[str, Probed] | None = None,
    repo: Path | None = None,
    subjects: Mapping[str, str] | None = None,
    cost: costs.FleetCost | None = None,
) -> dict[str, Any]:
    """The plan as JSON data; with `repo`, each NixOS machine's `install` state (install.records)
    and whether its generators are stored; `subjects`: URN -> machine of the shared steps
    (graph.steps.collect_subjects); `cost`: review.cost.fleet_cost of the fleet (priced here if not)."""
    owner = machine_of(graph)
    additions = machine_additions(fleet, repo)
    cost = cost or costs.fleet_cost(fleet)
    machines = {
        m.name: {
            "class": m.machine_class,
            "enabled": m.enabled,
            "tags": sorted(set(m.tags)),
            "target_host": str(m.target) if m.target else None,
            "resources": sorted(urn for urn, name in owner.items() if name == m.name),
            "cost": cost.machines[m.name],
        }
        | additions[m.name]
        | ({"system": systems[m.name].to_json()} if systems is not None else {})
        | (
            {"install": install_state(repo, m.name, m.disks.render() if m.disks else None)}
            if repo is not None and m.machine_class == "nixos"
            else {}
        )
        for m in fleet.machines
    }
    resources = [
        {
            "urn": r.urn,
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "machine": owner[r.urn],
            "subject": (subjects or {}).get(r.urn),
            "dependencies": list(r.dependencies),
            "property_dependencies": {prop: list(urns) for prop, urns in r.property_dependencies.items()},
            "inputs": r.inputs,
            "options": r.options,
        }
        for r in sorted(graph.resources, key=lambda r: r.urn)
    ]
    return {
        "schema": SCHEMA,
        "project": graph.project,
        "stack": graph.stack,
        "machines": machines,
        "resources": resources,
        "outputs": graph.outputs,
        "cost": cost.document(),
    }


def make_plan(
    project_dir: Path, stack: str, overrides: list[str] | None = None, repo: Path | None = None, runner: Runner = LOCAL
) -> Plan:
    """Load the stack's config and program, record what `pulumi preview` would register and probe
    the machines' systems (`runner` runs nix)."""
    from fleet_sdk.graph import deploy_fleet

    # refuses bad input before any registration, the disk layouts the install would read included
    config, settings, fleet = load_stack(project_dir, stack, overrides or [], repo)
    if problems := rendered.machines_problems(settings.repo, fleet.machines):
        raise SpecError(problems)
    cost = costs.fleet_cost(fleet)  # refuses a host without a list price
    # the generators the flake declares too, evaluated once: the graph takes this fleet as merged
    fleet = declared_fleet(runner, fleet, settings, program=f"stacks/{stack}.py").fleet
    with collect_subjects() as subjects:
        graph = recorded_graph(
            lambda: deploy_fleet(fleet, settings),
            preview=True,
            project=config.project,
            stack=stack,
            config=config.values,
        )
    if graph.duplicate_urns:
        # the engine would refuse these; mocks accept them silently
        raise DuplicateUrnError(graph.duplicate_urns)
    warnings = [message for severity, message in graph.log if severity in ("warning", "error")]
    document = plan_document(fleet, graph, machine_systems(fleet, settings, runner), settings.repo, subjects, cost)
    return Plan(fleet, document, warnings)


_DECLARED = {"flake": "in the flake", "python": "in Python", "stock": "built in (fleet_sdk)"}


def _generator_lines(generators: list[dict[str, Any]]) -> list[str]:
    """A machine's generators, a line per place they are declared in, and those not generated yet."""
    lines = []
    for declared, where in _DECLARED.items():
        if names := [g["name"] + (" (shared)" if g["share"] else "") for g in generators if g["declared"] == declared]:
            lines.append(f"  generators {where}: {', '.join(names)}")
    if missing := [g["name"] for g in generators if g["stored"] is False]:
        lines.append(f"  generators not generated yet: {', '.join(missing)}")
    return lines


def _short(urn: str) -> str:
    """type::name of a URN, without the parent chain."""
    qualified, name = urn.split("::")[2:4]
    return f"{qualified.split('$')[-1]}::{name}"


def render_text(plan: Plan) -> str:
    doc = plan.document
    resources = {r["urn"]: r for r in doc["resources"]}
    with_cloud = sum(1 for m in plan.fleet.machines if m.cloud)
    lines = [
        f"{doc['project']}/{doc['stack']}: {len(plan.fleet.machines)} machines "
        f"({with_cloud} with cloud resources), {len(resources)} resources (preview, offline)",
    ]

    def block(urns: list[str]) -> None:
        # parents before children: order by the depth of the type chain, then by URN
        for urn in sorted(urns, key=lambda u: (u.split("::")[2].count("$"), u)):
            r = resources[urn]
            deps = ", ".join(_short(d) for d in r["dependencies"])
            flags = " [protect]" if r["options"].get("protect") else ""
            flags += f" (acts on {r['subject']})" if r.get("subject") else ""
            lines.append(f"  + {r['type']:<34} {r['name']}{flags}" + (f"\n      after {deps}" if deps else ""))

    for m in plan.fleet.machines:
        entry = doc["machines"][m.name]
        where = m.host.summary if m.host is not None else "by hand"
        state = "" if m.enabled else " (disabled: no cloud resources)"
        target = f"  deploy: {entry['target_host']}" if entry["target_host"] else ""
        lines.append("")
        lines.append(f"{m.name}  {m.machine_class}  {where}{state}{target}  tags: {' '.join(entry['tags']) or '-'}")
        if entry.get("install", {}).get("reinstall_required"):
            lines.append("  REINSTALL REQUIRED: its disk layout changed since the install (a reinstall wipes it)")
        if system := entry.get("system"):
            lines.append(
                f"  system unknown: {system['unknown']}" if "unknown" in system else f"  system {system['outPath']}"
            )
        lines += _generator_lines(entry.get("generators") or [])
        if cost := costs.machine_line(entry.get("cost")):
            lines.append("  " + cost)
        block(entry["resources"])
    shared = [r["urn"] for r in doc["resources"] if r["machine"] is None]
    if shared:
        lines += ["", "shared"]
        block(shared)
    if total := costs.total_line(doc.get("cost")):
        lines += ["", total]
    if doc["outputs"]:
        lines += ["", "outputs"]
        for key, value in sorted(doc["outputs"].items()):
            lines.append(f"  {key}: {json.dumps(value, sort_keys=True)}")
    for w in plan.warnings:
        lines += ["", f"warning: {w}"]
    return "\n".join(lines) + "\n"
