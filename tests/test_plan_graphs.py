"""`fleet plan --graph dot|mermaid`: stable pictures of the plan, Graphviz-valid, cut to fit GitHub."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path
from typing import Any

from fleet_sdk.graph import deploy_fleet
from fleet_sdk.review.graphs import DEPENDENCY_COLOR, OP_COLORS, PARENT_COLOR, render_dot, render_mermaid
from fleet_sdk.review.plan import plan_document
from fleet_sdk.stack.settings import StackSettings
from fleet_sdk.testing import recorded_graph

from .conftest import prod_everyone
from .tools import require

STACK = "urn:pulumi:bench::fleet::"
FLEET = STACK + "fleet:index:Fleet::fleet"


def resource(urn: str, machine: str | None, parent: str | None, *deps: str) -> dict[str, Any]:
    qualified, name = urn.split("::")[2:4]
    return {
        "urn": urn,
        "type": qualified.split("$")[-1],
        "name": name,
        "parent": parent,
        "machine": machine,
        "dependencies": list(deps),
        "inputs": {},
        "options": {"protect": False},
    }


def fleet_plan(n: int) -> dict[str, Any]:
    """A plan of n Hetzner machines shaped as `deploy_fleet` registers them (bench/plan.py's fleet):
    3 shared parent edges, and per machine 4 resources, 4 parent edges and 4 dependency edges."""
    cloud = STACK + "fleet:index:Fleet$fleet:hetzner:Cloud::fleet"
    inner = STACK + "fleet:index:Fleet$fleet:hetzner:Cloud$"
    firewall, key = inner + "hcloud:index/firewall:Firewall::fleet", inner + "hcloud:index/sshKey:SshKey::fleet-deploy"
    resources = [
        resource(FLEET, None, None),
        resource(cloud, None, FLEET),
        resource(firewall, None, cloud),
        resource(key, None, cloud),
    ]
    for i in range(n):
        m = f"m{i:04d}"
        machine = f"{STACK}fleet:index:Fleet$fleet:index:Machine::{m}"
        inside = f"{STACK}fleet:index:Fleet$fleet:index:Machine$"
        server = f"{inside}hcloud:index/server:Server::{m}"
        vars_ = f"{inside}command:local:Command::{m}-vars"
        resources += [
            resource(machine, m, FLEET),
            resource(server, m, machine, firewall, key),
            resource(vars_, m, machine),
            resource(f"{inside}command:local:Command::{m}-install", m, machine, vars_, server),
        ]
    return {"project": "fleet", "stack": "bench", "machines": {}, "resources": resources, "outputs": {}}


def plan_edges(plan: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(dependency → dependent, child → parent) URN pairs of a plan."""
    urns = {r["urn"] for r in plan["resources"]}
    deps = {(d, r["urn"]) for r in plan["resources"] for d in r["dependencies"] if d in urns}
    parents = {(r["urn"], r["parent"]) for r in plan["resources"] if r["parent"] in urns}
    return deps, parents


def change(urn: str, op: str) -> dict[str, Any]:
    qualified, name = urn.split("::")[2:4]
    return {"urn": urn, "type": qualified.split("$")[-1], "name": name, "op": op, "protect": False, "paths": []}


def diff_of(machines: dict[str, list[dict[str, Any]]], shared: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entries = {
        m: {"status": "changed" if changes else "unchanged", "danger": [], "changes": changes}
        for m, changes in machines.items()
    }
    return {"schema": "fleet-plan-diff/1", "machines": entries, "shared": shared or []}


def dot_nodes(dot: str) -> dict[str, tuple[str, str]]:
    """Resource id -> (label, attribute text) of each node line."""
    found = re.findall(r"^\s*(Resource\d+) \[label=\"([^\"]*)\"(.*)\];$", dot, re.M)
    return {node: (label, rest) for node, label, rest in found}


def test_dot_follows_pulumi_stack_graph_numbered_by_sorted_urn() -> None:
    plan = fleet_plan(3)
    dot = render_dot(plan)
    assert dot.startswith("strict digraph {\n") and dot.endswith("}\n")
    nodes = dot_nodes(dot)
    urns = sorted(r["urn"] for r in plan["resources"])
    assert {node: label for node, (label, _) in nodes.items()} == {f"Resource{i}": u for i, u in enumerate(urns)}
    number = {u: f"Resource{i}" for i, u in enumerate(urns)}
    deps, parents = plan_edges(plan)
    edges = set(re.findall(r"^\s*(Resource\d+) -> (Resource\d+) \[color = \"(#[0-9A-F]{6})\"\];$", dot, re.M))
    expected = {(number[a], number[b], DEPENDENCY_COLOR) for a, b in deps}
    expected |= {(number[a], number[b], PARENT_COLOR) for a, b in parents}
    assert edges == expected and len(expected) == 3 + 3 * 8
    assert "fillcolor" not in dot  # no diff, no fill


def test_dot_is_the_same_bytes_whatever_the_input_order() -> None:
    plan = fleet_plan(5)
    first = render_dot(plan)
    shuffled = dict(
        plan, resources=[dict(r, dependencies=list(reversed(r["dependencies"]))) for r in plan["resources"]]
    )
    random.Random(7).shuffle(shuffled["resources"])
    assert render_dot(shuffled) == first == render_dot(plan)
    assert render_mermaid(shuffled) == render_mermaid(plan)


def cluster_members(dot: str) -> dict[str, set[str]]:
    clusters = {}
    for name, body in re.findall(r"^    subgraph (\S+) \{\n(.*?)^    \}$", dot, re.M | re.S):
        clusters[name] = set(re.findall(r"(Resource\d+) \[", body))
    return clusters


def test_each_machine_is_one_cluster_holding_its_resources() -> None:
    plan = fleet_plan(3)
    dot = render_dot(plan)
    clusters = cluster_members(dot)
    assert set(clusters) == {"cluster_m0000", "cluster_m0001", "cluster_m0002"}
    labels = {node: label for node, (label, _) in dot_nodes(dot).items()}
    for name, members in clusters.items():
        machine = name.removeprefix("cluster_")
        assert {labels[n] for n in members} == {r["urn"] for r in plan["resources"] if r["machine"] == machine}
    assert 'label="m0001";' in dot


def test_dot_fills_nodes_by_op_and_draws_what_the_diff_deletes(tmp_path: Path) -> None:
    plan = fleet_plan(2)
    inside = f"{STACK}fleet:index:Fleet$fleet:index:Machine$"
    gone = f"{inside}hcloud:index/firewall:Firewall::m0001-ports"
    ops = {
        f"{inside}hcloud:index/server:Server::m0000": "update",
        f"{inside}command:local:Command::m0000-install": "replace",
        f"{inside}command:local:Command::m0001-vars": "create",
        f"{STACK}fleet:index:Fleet$fleet:index:Machine::m0001": "same",
        gone: "delete",
    }
    diff = diff_of(
        {
            "m0000": [change(u, o) for u, o in ops.items() if "m0000" in u],
            "m0001": [change(u, o) for u, o in ops.items() if "m0001" in u],
        }
    )
    admit = f"{STACK}fleet:index:Fleet$fleet:zerotier:Network$command:local:Command::zerotier-admit-m0001"
    diff["machines"]["m0001"]["changes"].append(change(admit, "delete"))  # a shared step filed under its subject
    dot = render_dot(plan, diff)
    nodes = {label: rest for label, rest in dot_nodes(dot).values()}
    for urn, op in ops.items():
        if op == "same":
            assert "fillcolor" not in nodes[urn]
        else:
            assert f'fillcolor="{OP_COLORS[op]}"' in nodes[urn], (urn, nodes[urn])
    assert (
        'style="filled,dashed"' in nodes[gone]
        and 'style="filled"' in nodes[f"{inside}command:local:Command::m0001-vars"]
    )
    assert len(nodes) == len(plan["resources"]) + 2
    number = {label: node for node, (label, _) in dot_nodes(dot).items()}
    assert number[gone] in cluster_members(dot)["cluster_m0001"]
    assert f'fillcolor="{OP_COLORS["delete"]}"' in nodes[admit]
    assert all(number[admit] not in members for members in cluster_members(dot).values())  # shared, as in the plan
    assert len(set(OP_COLORS.values())) == 4


def test_graphviz_accepts_the_dot_of_the_prod_stack_and_odd_machine_names(
    settings: StackSettings, tmp_path: Path
) -> None:
    require(("dot", "graphviz"))
    graph = recorded_graph(lambda: deploy_fleet(prod_everyone(), settings), preview=True, stack="prod")
    prod = plan_document(prod_everyone(), graph)
    odd = fleet_plan(1)
    for r in odd["resources"]:
        if r["machine"] == "m0000":
            r["machine"] = 'we"ird name-1.\\x'
    for name, plan in (("prod", prod), ("odd", odd)):
        machine = next(m for r in plan["resources"] if (m := r["machine"]))
        server = next(r["urn"] for r in plan["resources"] if r["machine"] == machine)
        dot = render_dot(plan, diff_of({machine: [change(server, "replace")]}))
        done = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=False)
        assert done.returncode == 0 and done.stderr == "", (name, done.stderr)
        assert "<svg" in done.stdout and OP_COLORS["replace"] in done.stdout
        titles = set(re.findall(r'<g id="clust\d+" class="cluster">\n<title>([^<]*)</title>', done.stdout))
        machines = {r["machine"] for r in plan["resources"] if r["machine"]}
        assert len(titles) == len(machines) >= 1, name
    assert '"cluster_we\\"ird name-1.\\\\x"' in render_dot(odd)


def mermaid_edges(text: str) -> list[tuple[str, str, str]]:
    return re.findall(r"^\s*(\S+) (-->|-\.->) (\S+)$", text, re.M)


def test_mermaid_has_valid_ids_a_subgraph_per_machine_and_every_edge() -> None:
    plan = fleet_plan(4)
    text = render_mermaid(plan)
    assert text.startswith("flowchart LR\n")
    nodes = re.findall(r"^\s*(\S+)\[\"[^\"]*\"\]$", text, re.M)
    assert len(nodes) == len(plan["resources"]) and all(re.fullmatch(r"n\d+", n) for n in nodes)
    edges = mermaid_edges(text)
    assert all(re.fullmatch(r"n\d+", a) and re.fullmatch(r"n\d+", b) for a, _, b in edges)
    deps, parents = plan_edges(plan)
    assert len(edges) == len(deps) + len(parents)
    assert sum(1 for _, arrow, _ in edges if arrow == "-->") == len(deps)
    assert re.findall(r"^    subgraph (m\d+) \[\"([^\"]*)\"\]$", text, re.M) == [
        (f"m{i}", f"m000{i}") for i in range(4)
    ]
    assert text.count("\n    end\n") == 4
    assert "%%" not in text  # nothing cut


def test_mermaid_classes_nodes_by_op_and_escapes_labels() -> None:
    plan = fleet_plan(1)
    odd = f'{STACK}fleet:index:Fleet$fleet:index:Machine$command:local:Command::say "hi" <b>#1'
    plan["resources"].append(resource(odd, "m0000", None))
    server = f"{STACK}fleet:index:Fleet$fleet:index:Machine$hcloud:index/server:Server::m0000"
    text = render_mermaid(plan, diff_of({"m0000": [change(server, "update"), change(odd, "create")]}))
    ids = {urn: f"n{i}" for i, urn in enumerate(sorted(r["urn"] for r in plan["resources"]))}
    assert f"    class {ids[server]} update" in text and f"    class {ids[odd]} create" in text
    assert all(f"classDef {op} fill:{color}" in text for op, color in OP_COLORS.items())
    assert f'{ids[odd]}["command:local:Command::say #quot;hi#quot; #lt;b#gt;#35;1"]' in text


def test_a_thousand_machines_are_cut_to_500_edges_with_a_note() -> None:
    plan = fleet_plan(1000)
    deps, parents = plan_edges(plan)
    assert len(deps) + len(parents) == 3 + 8 * 1000
    text = render_mermaid(plan)
    edges = mermaid_edges(text)
    assert 0 < len(edges) <= 500 and len(text) <= 50_000
    notes = [line for line in text.splitlines() if line.startswith("%%")]
    shown = set(re.findall(r'subgraph m\d+ \["(m\d+)"\]', text))
    assert notes and f"left out: {1000 - len(shown)} of 1000 machines" in notes[1]
    assert f"{len(deps) + len(parents) - len(edges)} of {len(deps) + len(parents)} edges" in notes[1]
    assert shown == {f"m{i:04d}" for i in range(len(shown))}  # the first machines, in name order
    assert len(shown) == 62  # 8 edges a machine (its shared dependencies' parents left out), up to 500


def test_the_cut_keeps_changed_machines_and_their_direct_dependencies() -> None:
    plan = fleet_plan(1000)
    inside = f"{STACK}fleet:index:Fleet$fleet:index:Machine$"
    changed = ["m0500", "m0999"]
    diff = diff_of(
        {m: [change(f"{inside}hcloud:index/server:Server::{m}", "replace")] for m in changed} | {"m0001": []}
    )
    text = render_mermaid(plan, diff)
    shown = set(re.findall(r'subgraph m\d+ \["(m\d+)"\]', text))
    assert shown == set(changed)
    ids = {urn: f"n{i}" for i, urn in enumerate(sorted(r["urn"] for r in plan["resources"]))}
    firewall = STACK + "fleet:index:Fleet$fleet:hetzner:Cloud$hcloud:index/firewall:Firewall::fleet"
    assert re.search(rf"^\s*{ids[firewall]}\[", text, re.M)  # a direct dependency of the servers
    assert f"{ids[firewall]} --> {ids[inside + 'hcloud:index/server:Server::m0500']}" in text
    assert not re.search(rf"^\s*{ids[STACK + 'fleet:index:Fleet$fleet:hetzner:Cloud::fleet']}\[", text, re.M)
    assert "changed machines and shared resources" in text and "left out: 998 of 1000 machines" in text
    assert (
        f"class {ids[inside + 'hcloud:index/server:Server::m0500']},{ids[inside + 'hcloud:index/server:Server::m0999']} replace"
        in text
    )


def test_the_cut_names_the_changed_machines_that_did_not_fit() -> None:
    plan = fleet_plan(200)
    inside = f"{STACK}fleet:index:Fleet$fleet:index:Machine$"
    changed = [f"m{i:04d}" for i in range(0, 200, 2)]  # 100 changed machines, 62 fit
    text = render_mermaid(
        plan, diff_of({m: [change(f"{inside}command:local:Command::{m}-vars", "update")] for m in changed})
    )
    shown = set(re.findall(r'subgraph m\d+ \["(m\d+)"\]', text))
    assert shown == set(changed[:62]) and len(mermaid_edges(text)) <= 500
    assert "%% changed but did not fit (38): m0124, m0126," in text and "and 28 more" in text


def test_a_graph_over_50000_characters_is_cut_even_with_few_edges() -> None:
    long = "x" * 200
    plan = {
        "resources": [
            resource(f"{STACK}fleet:index:Fleet$fleet:index:Machine::m{i:03d}-{long}", f"m{i:03d}-{long}", None)
            for i in range(400)
        ]
    }
    assert len(render_dot(plan)) > 80_000
    text = render_mermaid(plan)
    assert 45_000 < len(text) <= 50_000 and mermaid_edges(text) == []
    shown = re.findall(r'subgraph m\d+ \["(m\d+)-x+"\]', text)
    assert shown == [f"m{i:03d}" for i in range(len(shown))]
    assert f"left out: {400 - len(shown)} of 400 machines" in text
