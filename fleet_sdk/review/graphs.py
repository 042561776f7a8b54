"""Pictures of a plan's resource graph: Graphviz DOT as `pulumi stack graph` draws it, and Mermaid
for a pull-request comment (preview.md §4, §6.4).

Both number the resources in sorted-URN order, so the same plan always gives the same bytes whatever
order its resources came in. Dependency edges run dependency → dependent, parent edges child → parent,
in Pulumi's colours. Each machine's resources sit in a box of their own; with a diff (review.diff's
dict) each resource is filled by its op, and the resources the diff deletes are drawn too (dashed).
GitHub renders Mermaid up to 500 edges and 50,000 characters: a larger graph keeps only the changed
machines (without a diff: the first machines that fit) and their direct dependencies, and says so in a
`%%` note.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEPENDENCY_COLOR = "#246C60"
PARENT_COLOR = "#AA6639"
# op -> fill; "same" is not filled
OP_COLORS = {"create": "#8fd694", "update": "#ffe066", "replace": "#ffa94d", "delete": "#ff6b6b"}
MERMAID_MAX_CHARS = 50_000
MACHINE_TYPE = "fleet:index:Machine"
_DOT_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Node:
    urn: str
    type: str
    name: str
    machine: str | None
    op: str | None
    deleted: bool


@dataclass(frozen=True)
class Edge:
    source: int
    target: int
    kind: str  # "dependency" (dependency -> dependent) or "parent" (child -> parent)


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]  # index N is Resource<N> / n<N>
    edges: list[Edge]  # dependency edges, then parent edges, each sorted

    @property
    def machines(self) -> list[str]:
        return sorted({n.machine for n in self.nodes if n.machine is not None})


def _changes(diff: Mapping[str, Any]) -> Iterable[tuple[str | None, Mapping[str, Any]]]:
    for machine, entry in sorted(diff.get("machines", {}).items()):
        for change in entry.get("changes", []):
            yield machine, change
    for change in diff.get("shared", []):
        yield None, change


def _type_chain(urn: str) -> list[str]:
    """The types of a URN's parents and its own, outermost first."""
    parts = urn.split("::", 3)
    return parts[2].split("$") if len(parts) == 4 else []


def _type_name(urn: str) -> tuple[str, str]:
    chain = _type_chain(urn)
    return (chain[-1], urn.split("::", 3)[3]) if chain else ("", urn)


def build_graph(plan: Mapping[str, Any], diff: Mapping[str, Any] | None = None) -> Graph:
    """The plan's resources (and, with a diff, the ones it deletes) numbered in sorted-URN order, and
    the edges between them."""
    resources = {r["urn"]: r for r in plan.get("resources", [])}
    ops: dict[str, str] = {}
    gone: dict[str, tuple[str | None, Mapping[str, Any]]] = {}
    for machine, change in _changes(diff or {}):
        ops[change["urn"]] = change.get("op", "same")
        if change["urn"] not in resources and change.get("op") == "delete":
            # the diff files a shared step under the machine it acts on; the plan keeps it shared
            inside = MACHINE_TYPE in _type_chain(change["urn"])
            gone[change["urn"]] = (machine if inside else None, change)
    nodes: list[Node] = []
    for urn in sorted({*resources, *gone}):
        if urn in resources:
            r = resources[urn]
            nodes.append(Node(urn, r.get("type", ""), r.get("name", ""), r.get("machine"), ops.get(urn), False))
        else:
            machine, change = gone[urn]
            type_, name = _type_name(urn)
            nodes.append(Node(urn, change.get("type", type_), change.get("name", name), machine, "delete", True))
    index = {n.urn: i for i, n in enumerate(nodes)}
    dependencies: set[tuple[int, int]] = set()
    parents: set[tuple[int, int]] = set()
    for urn, r in resources.items():
        for dependency in r.get("dependencies", []):
            if dependency in index and dependency != urn:
                dependencies.add((index[dependency], index[urn]))
        if r.get("parent") in index:
            parents.add((index[urn], index[r["parent"]]))
    edges = [Edge(a, b, "dependency") for a, b in sorted(dependencies)]
    edges += [Edge(a, b, "parent") for a, b in sorted(parents)]
    return Graph(nodes, edges)


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _cluster_id(machine: str) -> str:
    name = f"cluster_{machine}"
    return name if _DOT_ID.fullmatch(name) else _dot_string(name)


def _dot_node(i: int, node: Node) -> str:
    attributes = [f"label={_dot_string(node.urn)}"]
    if node.op in OP_COLORS:
        style = "filled,dashed" if node.deleted else "filled"
        attributes += [f'style="{style}"', f'fillcolor="{OP_COLORS[node.op]}"']
    return f"Resource{i} [{', '.join(attributes)}];"


def render_dot(plan: Mapping[str, Any], diff: Mapping[str, Any] | None = None) -> str:
    """Graphviz DOT in `pulumi stack graph`'s conventions, a `cluster_<machine>` box per machine."""
    graph = build_graph(plan, diff)
    lines = ["strict digraph {"]
    lines += [f"    {_dot_node(i, n)}" for i, n in enumerate(graph.nodes) if n.machine is None]
    for machine in graph.machines:
        lines.append(f"    subgraph {_cluster_id(machine)} {{")
        lines.append(f"        label={_dot_string(machine)};")
        lines += [f"        {_dot_node(i, n)}" for i, n in enumerate(graph.nodes) if n.machine == machine]
        lines.append("    }")
    for edge in graph.edges:
        color = DEPENDENCY_COLOR if edge.kind == "dependency" else PARENT_COLOR
        lines.append(f'    Resource{edge.source} -> Resource{edge.target} [color = "{color}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """A quoted Mermaid label: `#` starts an entity code, so it and the characters a label cannot
    hold are entity codes."""
    for char, entity in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return f'"{text}"'


def _mermaid_node(i: int, node: Node) -> str:
    return f"n{i}[{_mermaid_text(f'{node.type}::{node.name}' if node.type else node.urn)}]"


def _mermaid_edge(edge: Edge) -> str:
    arrow = "-->" if edge.kind == "dependency" else "-.->"
    return f"n{edge.source} {arrow} n{edge.target}"


def _mermaid(graph: Graph, keep: set[int] | None, notes: list[str]) -> str:
    """The flowchart of the kept nodes (all when None) and the edges between them."""
    shown = [i for i in range(len(graph.nodes)) if keep is None or i in keep]
    inside: dict[str, list[int]] = {}
    for i in shown:
        inside.setdefault(graph.nodes[i].machine or "", []).append(i)
    lines = ["flowchart LR", *(f"%% {note}" for note in notes)]
    lines += [f"    classDef {op} fill:{color},stroke:#333" for op, color in OP_COLORS.items()]
    lines += [f"    {_mermaid_node(i, graph.nodes[i])}" for i in shown if graph.nodes[i].machine is None]
    for k, machine in enumerate(graph.machines):
        if machine in inside:
            lines.append(f"    subgraph m{k} [{_mermaid_text(machine)}]")
            lines += [f"        {_mermaid_node(i, graph.nodes[i])}" for i in inside[machine]]
            lines.append("    end")
    edges = [e for e in graph.edges if keep is None or (e.source in keep and e.target in keep)]
    lines += [f"    {_mermaid_edge(e)}" for e in edges]
    if edges:
        lines.append(f"    linkStyle default stroke:{DEPENDENCY_COLOR}")
        parents = [str(j) for j, e in enumerate(edges) if e.kind == "parent"]
        if parents:
            lines.append(f"    linkStyle {','.join(parents)} stroke:{PARENT_COLOR}")
    for op in OP_COLORS:
        classed = [f"n{i}" for i in shown if graph.nodes[i].op == op]
        if classed:
            lines.append(f"    class {','.join(classed)} {op}")
    return "\n".join(lines) + "\n"


def render_mermaid(plan: Mapping[str, Any], diff: Mapping[str, Any] | None = None, max_edges: int = 500) -> str:
    """A Mermaid flowchart, a subgraph per machine; cut to fit GitHub's limits (module docstring)."""
    graph = build_graph(plan, diff)
    whole = _mermaid(graph, None, [])
    if len(graph.edges) <= max_edges and len(whole) <= MERMAID_MAX_CHARS:
        return whole
    return _cut(graph, diff, max_edges)


def _units(graph: Graph, diff: Mapping[str, Any] | None) -> list[tuple[str, list[int]]]:
    """What the cut adds, in order: changed machines and changed shared resources with a diff, every
    machine without one."""
    members: dict[str, list[int]] = {}
    for i, node in enumerate(graph.nodes):
        if node.machine is not None:
            members.setdefault(node.machine, []).append(i)
    if diff is None:
        return [(machine, members[machine]) for machine in graph.machines]
    statuses = {m: e.get("status") for m, e in diff.get("machines", {}).items()}
    changed = {n.machine for n in graph.nodes if n.op not in (None, "same")}
    units = [
        (machine, members[machine])
        for machine in graph.machines
        if machine in changed or statuses.get(machine) not in (None, "unchanged")
    ]
    units += [(n.name, [i]) for i, n in enumerate(graph.nodes) if n.machine is None and n.op not in (None, "same")]
    return units


def _cut(graph: Graph, diff: Mapping[str, Any] | None, max_edges: int) -> str:
    """The units (_units) that fit, each with its direct dependencies; the character budget is an
    estimate, tightened until the text fits."""
    direct: dict[int, set[int]] = {}  # node -> its dependencies and its parent
    touching: dict[int, list[int]] = {}  # node -> the edges at it
    for j, e in enumerate(graph.edges):
        dependent, dependency = (e.target, e.source) if e.kind == "dependency" else (e.source, e.target)
        direct.setdefault(dependent, set()).add(dependency)
        touching.setdefault(e.source, []).append(j)
        touching.setdefault(e.target, []).append(j)
    units = _units(graph, diff)
    budget = MERMAID_MAX_CHARS - 1_000  # header, classDefs, notes
    while True:
        kept: set[int] = set()
        edges: set[int] = set()
        size = 0
        skipped: list[str] = []
        for name, members in units:
            adding = ({*members} | {d for i in members for d in direct.get(i, ())}) - kept
            grown = kept | adding
            new_edges = {j for i in adding for j in touching.get(i, ()) if _within(graph.edges[j], grown)}
            cost = 40 + len(name) + sum(len(_mermaid_node(i, graph.nodes[i])) + 16 for i in adding)
            cost += sum(len(_mermaid_edge(graph.edges[j])) + 10 for j in new_edges)
            if len(edges) + len(new_edges) > max_edges or size + cost > budget:
                skipped.append(name)
                continue
            kept, edges, size = grown, edges | new_edges, size + cost
        text = _mermaid(graph, kept, _notes(graph, diff, max_edges, skipped, kept, len(edges)))
        if len(text) <= MERMAID_MAX_CHARS:
            return text
        budget -= len(text) - MERMAID_MAX_CHARS + 1_000


def _within(edge: Edge, nodes: set[int]) -> bool:
    return edge.source in nodes and edge.target in nodes


def _notes(
    graph: Graph,
    diff: Mapping[str, Any] | None,
    max_edges: int,
    skipped: list[str],
    kept: set[int],
    shown_edges: int,
) -> list[str]:
    machines = len(graph.machines)
    shown = len({graph.nodes[i].machine for i in kept} - {None})
    what = "changed machines and shared resources" if diff is not None else "machines in name order"
    notes = [
        f"cut to fit GitHub's Mermaid limits ({max_edges} edges, {MERMAID_MAX_CHARS:,} characters): "
        f"{what} and their direct dependencies only",
        f"left out: {machines - shown} of {machines} machines, {len(graph.nodes) - len(kept)} of "
        f"{len(graph.nodes)} resources, {len(graph.edges) - shown_edges} of {len(graph.edges)} edges",
    ]
    if skipped and diff is not None:  # changed machines the picture lacks
        names = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        notes.append(f"changed but did not fit ({len(skipped)}): {names}")
    return notes
