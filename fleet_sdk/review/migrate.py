"""`fleet migrate terranix`: an OpenTofu/Terraform state as Pulumi's bulk import file.

The state (format version 4, as `tofu state pull` writes it) lists what terranix made; the stack's
recorded graph (what `fleet plan` shows) says what the stack declares. Each managed resource of the
state is matched to the stack's resource of the corresponding type (`KINDS`): by the name the cloud
knows it by, else, for firewalls and the deploy key, by what it holds. The import file names each
matched resource with the type, logical name, parent and provider the graph registers it with, and
the id from the state, so `pulumi import --file` puts it in the stack's state under the URN the next
`pulumi up` registers. The components above them (`fleet:index:Fleet`, the machine, the cloud) are
listed as components, which the import creates when they are not in the state yet; an explicit
provider cannot be imported, so it must exist first (`Migration.targets`). What cannot be matched is
skipped, each with the reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_sdk.errors import DuplicateUrnError
from fleet_sdk.graph.offline import RecordedGraph, RecordedResource, recorded_graph
from fleet_sdk.review.tfstate import Skipped, TfObject, read_state
from fleet_sdk.spec import Fleet
from fleet_sdk.stack.settings import load_stack

SERVER = "hcloud:index/server:Server"
SSH_KEY = "hcloud:index/sshKey:SshKey"
HZ_FIREWALL = "hcloud:index/firewall:Firewall"
INSTANCE = "gcp:compute/instance:Instance"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"


@dataclass(frozen=True)
class Mapped:
    address: str
    resource: RecordedResource  # the stack's resource, as the graph registers it
    id: str  # Pulumi's import id


@dataclass(frozen=True)
class Context:
    fleet: Fleet
    stack: str
    zone: str | None  # fleet:cloudflareZone


@dataclass
class Migration:
    document: dict[str, Any]  # Pulumi's import file
    mapped: list[Mapped]
    skipped: list[Skipped]
    # explicit providers (and their parents) a targeted `pulumi up` creates before `pulumi import`
    targets: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=True) + "\n"


# matching


def _same_name(obj: TfObject, ours: RecordedResource, ctx: Context) -> bool:
    return bool(obj.name) and ours.inputs.get("name") == obj.name


def _rules(rules: Any, port_key: str) -> frozenset[tuple[str, ...]]:
    """A firewall's inbound rules as (protocol, ports…) sets, to compare a state's with the graph's."""
    out = set()
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict) or rule.get("direction", "in") != "in":
            continue
        ports = rule.get(port_key) or ()
        ports = (ports,) if isinstance(ports, str) else tuple(sorted(str(p) for p in ports))
        out.add((str(rule.get("protocol")), *ports))
    return frozenset(out)


def _same_hcloud_rules(obj: TfObject, ours: RecordedResource, ctx: Context) -> bool:
    theirs = _rules(obj.attributes.get("rule"), "port")
    return bool(theirs) and theirs == _rules(ours.inputs.get("rules"), "port")


def _same_gcp_allows(obj: TfObject, ours: RecordedResource, ctx: Context) -> bool:
    theirs = _rules(obj.attributes.get("allow"), "ports")
    return bool(theirs) and theirs == _rules(ours.inputs.get("allows"), "ports")


def _any(obj: TfObject, ours: RecordedResource, ctx: Context) -> bool:
    return True  # the fleet's one deploy key, when the state holds one key and the stack declares one


def _same_record(obj: TfObject, ours: RecordedResource, ctx: Context) -> bool:
    name = obj.name.rstrip(".")
    if not name or obj.attributes.get("type") != ours.inputs.get("type"):
        return False
    return ours.inputs.get("name") in (name, f"{name}.{ctx.zone}")


def _record_id(obj: TfObject) -> str:
    zone = obj.attributes.get("zone_id")
    return f"{zone}/{obj.id}" if isinstance(zone, str) and zone else obj.id


Match = Callable[[TfObject, RecordedResource, Context], bool]


@dataclass(frozen=True)
class Kind:
    """How a state's resource type becomes the stack's: its type, how it is recognised (`strict` by
    name first, then `loose` by content, where one on each side must remain), its import id."""

    ours: str
    what: str  # for reasons: "server", "firewall", …
    strict: Match
    loose: Match | None = None
    import_id: Callable[[TfObject], str] = lambda obj: obj.id


KINDS: dict[str, Kind] = {
    "hcloud_server": Kind(SERVER, "Hetzner server", _same_name),
    "hcloud_ssh_key": Kind(SSH_KEY, "Hetzner SSH key", _same_name, _any),
    "hcloud_firewall": Kind(HZ_FIREWALL, "Hetzner firewall", _same_name, _same_hcloud_rules),
    "google_compute_instance": Kind(INSTANCE, "GCE instance", _same_name),
    "google_compute_firewall": Kind(GCP_FIREWALL, "GCE firewall rule", _same_name, _same_gcp_allows),
    "cloudflare_dns_record": Kind(DNS_RECORD, "DNS record", _same_record, import_id=_record_id),
    "cloudflare_record": Kind(DNS_RECORD, "DNS record", _same_record, import_id=_record_id),
}


def match(objects: Sequence[TfObject], graph: RecordedGraph, ctx: Context) -> tuple[list[Mapped], list[Skipped]]:
    """Each object to the stack's resource it is, or skipped with the reason. Names match first (each
    resource of the stack at most once); then content, where it is unambiguous on both sides."""
    claimed: dict[str, str] = {}  # our URN -> the address mapped to it
    found: dict[str, Mapped] = {}
    for obj in objects:
        kind = KINDS.get(obj.type)
        hits = [r for r in graph.of_type(kind.ours) if kind.strict(obj, r, ctx)] if kind else []
        free = [r for r in hits if r.urn not in claimed]
        if kind and len(free) == 1:
            claimed[free[0].urn] = obj.address
            found[obj.address] = Mapped(obj.address, free[0], kind.import_id(obj))
    loose: dict[str, list[RecordedResource]] = {}
    for obj in objects:
        kind = KINDS.get(obj.type)
        if kind and kind.loose and obj.address not in found:
            loose[obj.address] = [
                r for r in graph.of_type(kind.ours) if r.urn not in claimed and kind.loose(obj, r, ctx)
            ]
    wanted = Counter(r.urn for hits in loose.values() for r in hits)
    for obj in objects:
        hits = loose.get(obj.address, [])
        if len(hits) == 1 and wanted[hits[0].urn] == 1:
            kind = KINDS[obj.type]
            claimed[hits[0].urn] = obj.address
            found[obj.address] = Mapped(obj.address, hits[0], kind.import_id(obj))
    skipped = [Skipped(o.address, _why_not(o, graph, ctx, claimed, loose)) for o in objects if o.address not in found]
    return [found[o.address] for o in objects if o.address in found], skipped


def _why_not(
    obj: TfObject, graph: RecordedGraph, ctx: Context, claimed: dict[str, str], loose: dict[str, list[RecordedResource]]
) -> str:
    kind = KINDS.get(obj.type)
    if kind is None:
        return f"the stack declares no {obj.type} resources (fleet_sdk has no counterpart)"
    declared = graph.of_type(kind.ours)
    named = [r for r in declared if kind.strict(obj, r, ctx)]
    if named and named[0].urn in claimed:
        return f"the stack's {kind.what} {named[0].name} is already mapped from {claimed[named[0].urn]}"
    candidates = named or loose.get(obj.address, [])
    if candidates:
        urns = {r.urn for r in candidates}
        rivals = sorted(a for a, hits in loose.items() if a != obj.address and urns & {r.urn for r in hits})
        also = f"; so could {', '.join(rivals)}" if rivals else ""
        return f"ambiguous: it could be the stack's {kind.what} {', '.join(sorted(r.name for r in candidates))}{also}"
    if kind.ours in (SERVER, INSTANCE):
        return _why_no_machine(obj, kind, ctx)
    if kind.ours == DNS_RECORD:
        return f"the stack declares no {obj.attributes.get('type')} record {obj.name!r}"
    if not declared:
        return f"the stack declares no {kind.what} (no enabled machine needs one)"
    if kind.loose is _any:
        return f"the stack's {kind.what} {declared[0].name} is already mapped from {claimed[declared[0].urn]}"
    return f"no {kind.what} of the stack is named {obj.name!r} or holds the same rules"


def _why_no_machine(obj: TfObject, kind: Kind, ctx: Context) -> str:
    machine = next((m for m in ctx.fleet.machines if m.name == obj.name), None)
    if machine is None:
        return f"no machine {obj.name!r} in stack {ctx.stack}"
    if not machine.enabled:
        return (
            f"machine {obj.name!r} is disabled in stack {ctx.stack} (fleet:enabled); "
            f"enable it to import its {kind.what}"
        )
    where = machine.host.summary if machine.host is not None else "no cloud host"
    return f"machine {obj.name!r} of stack {ctx.stack} is not a {kind.what} ({where})"


# the import file


def _ancestors(resource: RecordedResource, by_urn: Mapping[str, RecordedResource]) -> list[RecordedResource]:
    out = []
    parent = resource.parent
    while parent is not None and parent in by_urn:
        out.append(by_urn[parent])
        parent = by_urn[parent].parent
    return out


def _handles(resources: Sequence[RecordedResource]) -> dict[str, str]:
    """URN -> the name the import file refers to it by: its logical name where that is unique, else
    qualified by its type (`cinnabarServer`), or by module and type where that is not enough
    (`fleetHetznerCloud`, `fleetGcpCloud`), with a number as the last resort."""

    def qualified(r: RecordedResource, with_module: bool) -> str:
        _, module, kind = [*r.type.split(":"), "", ""][:3]
        words = [module, kind.split("/")[-1]] if with_module else [kind.split("/")[-1] or module]
        return r.name + "".join(w[:1].upper() + w[1:] for w in words)

    names = Counter(r.name for r in resources)
    by_type = Counter(qualified(r, False) for r in resources)
    out: dict[str, str] = {}
    for r in resources:
        if names[r.name] == 1:
            out[r.urn] = r.name
        else:
            out[r.urn] = qualified(r, by_type[qualified(r, False)] > 1)
    taken: set[str] = set()
    for r in sorted(resources, key=lambda r: r.urn):
        handle, n = out[r.urn], 2
        while handle in taken:
            handle, n = f"{out[r.urn]}{n}", n + 1
        taken.add(handle)
        out[r.urn] = handle
    return out


def import_document(mapped: Sequence[Mapped], graph: RecordedGraph) -> tuple[dict[str, Any], list[str]]:
    """Pulumi's import file for `mapped` and the components above them, and the URNs a targeted
    `pulumi up` must create first: the explicit providers they use, with their parents."""
    by_urn = graph.by_urn()
    ids = {m.resource.urn: m.id for m in mapped}
    listed: dict[str, RecordedResource] = {}  # imported, or created as components
    table: dict[str, RecordedResource] = {}  # referred to by URN: providers
    targets: dict[str, RecordedResource] = {}
    for m in mapped:
        listed[m.resource.urn] = m.resource
        for ancestor in _ancestors(m.resource, by_urn):
            (table if ancestor.custom else listed)[ancestor.urn] = ancestor
        provider = m.resource.options.get("provider")
        if provider in by_urn:
            table[provider] = by_urn[provider]
            for r in [by_urn[provider], *_ancestors(by_urn[provider], by_urn)]:
                targets[r.urn] = r
    handles = _handles([*listed.values(), *table.values()])
    entries = []
    for r in sorted(listed.values(), key=lambda r: (r.urn.split("::")[2].count("$"), r.urn)):
        entry: dict[str, Any] = {"type": r.type, "name": handles[r.urn]}
        if handles[r.urn] != r.name:
            entry["logicalName"] = r.name
        entry |= {"id": ids[r.urn]} if r.urn in ids else {"component": True}
        if r.parent in handles:
            entry["parent"] = handles[r.parent]
        if r.options.get("provider") in handles:
            entry["provider"] = handles[r.options["provider"]]
        entries.append(entry)
    document = {"nameTable": {handles[urn]: urn for urn in table}, "resources": entries}
    order = sorted(targets.values(), key=lambda r: (r.urn.split("::")[2].count("$"), r.urn))
    return document, [r.urn for r in order]


def migrate(
    objects: Sequence[TfObject], graph: RecordedGraph, ctx: Context, skipped: Sequence[Skipped] = ()
) -> Migration:
    mapped, unmatched = match(objects, graph, ctx)
    document, targets = import_document(mapped, graph)
    return Migration(document, mapped, [*unmatched, *skipped], targets)


def stack_graph(
    project_dir: Path, stack: str, overrides: Sequence[str] = (), repo: Path | None = None
) -> tuple[RecordedGraph, Context]:
    """The stack loaded as `fleet plan` loads it (config, -c overrides, --repo) and its graph as a
    preview registers it."""
    from fleet_sdk.graph import deploy_fleet

    config, settings, fleet = load_stack(project_dir, stack, list(overrides), repo)
    graph = recorded_graph(
        lambda: deploy_fleet(fleet, settings), preview=True, project=config.project, stack=stack, config=config.values
    )
    if graph.duplicate_urns:
        raise DuplicateUrnError(graph.duplicate_urns)
    return graph, Context(fleet, stack, settings.cloudflare_zone)


def migrate_stack(
    project_dir: Path, stack: str, state: Path, overrides: Sequence[str] = (), repo: Path | None = None
) -> Migration:
    """Read `state` and map it onto the stack's graph (`stack_graph`)."""
    objects, skipped = read_state(state)  # a bad state file fails before the stack is loaded
    graph, ctx = stack_graph(project_dir, stack, overrides, repo)
    return migrate(objects, graph, ctx, skipped)
