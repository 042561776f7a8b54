"""Reading the vars of a fleet: check, list, get, set and fix (reference/clan.md §4.4, §4.5)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from typing_extensions import override

from fleet_sdk import git
from fleet_sdk.errors import FleetError
from fleet_sdk.keys import SopsTree, rekey_all
from fleet_sdk.sops.document import recipients
from fleet_sdk.spec import Fleet
from fleet_sdk.spec.generators import Generator, GeneratorFile
from fleet_sdk.vars.scoping import foreign_links, unlink
from fleet_sdk.vars.selection import fleet_graph
from fleet_sdk.vars.store import GeneratorId, VarsStore, generator_id


@dataclass(frozen=True)
class Finding:
    machine: str
    var: str  # generator/file
    problem: str

    @override
    def __str__(self) -> str:
        return f"{self.machine}: {self.var}: {self.problem}"


def check(store: VarsStore, fleet: Fleet, machines: list[str] | None = None) -> list[Finding]:
    findings = []
    wanted = set(machines or fleet.names)
    for found in foreign_links(store.sops):
        if {found.owner, found.machine} & wanted:
            findings.append(
                Finding(
                    found.machine,
                    str(found.secret),
                    f"{found.describe()}: run `fleet vars fix` to unlink it, then rotate the secret",
                )
            )
    for machine in machines or fleet.names:
        for g in fleet.generators_of(machine):
            gid = generator_id(g, machine)
            if not store.validation_ok(gid, g):
                findings.append(Finding(machine, g.name, "validation changed: run `fleet vars generate`"))
            for f in g.all_files:
                var = f"{g.name}/{f.name}"
                if not store.exists(gid, f):
                    kind = "secret" if f.secret else "public value"
                    findings.append(Finding(machine, var, f"{kind} missing: run `fleet vars generate`"))
                    continue
                if not f.secret:
                    continue
                folder = store.file_dir(gid, f.name)
                wanted = store.sops.recipients_of(folder)
                have = set(recipients((folder / "secret").read_text(), str(folder / "secret")))
                if have != wanted:
                    findings.append(Finding(machine, var, "recipients differ from its members: run `fleet vars fix`"))
                if f.deploy and not store.sops.links_machine(folder, machine):
                    findings.append(Finding(machine, var, "the machine cannot decrypt it: run `fleet vars fix`"))
    return findings


def find_var(fleet: Fleet, machine: str, var: str) -> tuple[GeneratorId, Generator, GeneratorFile]:
    """`generator/file` of a machine; a unique prefix is accepted."""
    candidates = [
        (generator_id(g, machine), g, f)
        for g in fleet.generators_of(machine)
        for f in g.all_files
        if f"{g.name}/{f.name}".startswith(var)
    ]
    exact = [c for c in candidates if f"{c[1].name}/{c[2].name}" == var]
    if exact or len(candidates) == 1:
        return (exact or candidates)[0]
    options = ", ".join(sorted(f"{g.name}/{f.name}" for _, g, f in candidates)) or "none"
    raise FleetError(f"machine {machine!r} has no var {var!r} (did you mean one of: {options})")


def listing(store: VarsStore, fleet: Fleet, machine: str) -> list[str]:
    lines = []
    for g in fleet.generators_of(machine):
        gid = generator_id(g, machine)
        for f in g.all_files:
            if not store.exists(gid, f):
                shown = "<not set>"
            elif f.secret:
                shown = "********"
            else:
                raw = store.public(gid, f.name) or b""
                try:
                    shown = raw.decode()
                except UnicodeDecodeError:
                    shown = "<binary blob>"
            lines.append(f"{g.name}/{f.name}: {shown}")
    return sorted(lines)


def machines_of(fleet: Fleet, gid: GeneratorId) -> list[str]:
    node = fleet_graph(fleet).get(gid)
    return list(node.machines) if node else ([gid.machine] if gid.machine else [])


def set_var(store: VarsStore, fleet: Fleet, machine: str, var: str, value: bytes, identities: list[str]) -> Path:
    gid, _, f = find_var(fleet, machine, var)
    if f.secret and not value:
        raise FleetError(f"{var}: refusing to store an empty secret")
    admin = store.sops.admin(identities) if f.secret else ""
    owners = machines_of(fleet, gid)
    if f.secret and f.deploy:
        for m in owners:
            store.sops.ensure_machine_key(m, identities)
    folder = store.set_file(gid, f, value, owners, admin)
    git.add(store.repo, [folder])
    return folder


@dataclass(frozen=True)
class FixResult:
    rekeyed: list[Path]
    stuck: list[Path]  # not encrypted to the operator's key
    unscoped: list[str]  # what was unlinked from machines' own secrets, as sentences
    rotate: list[str]  # those secrets (relative folders): another machine could read them


def fix(store: VarsStore, fleet: Fleet, identities: list[str]) -> FixResult:
    """Link every declaring machine to its deploy secrets (and unlink deploy=false ones), unlink
    machines from other machines' own secrets, then re-key every secret whose recipients differ
    from its links."""
    for gid, node in fleet_graph(fleet).items():
        for f in node.generator.all_files:
            folder = store.file_dir(gid, f.name)
            if not f.secret or not (folder / "secret").is_file():
                continue
            if f.deploy:
                for m in node.machines:
                    if (store.sops.member_dir("machines", m) / "key.json").is_file():
                        store.sops.add_member(folder, "machines", m)
            else:
                links = folder / "machines"
                for link in links.iterdir() if links.is_dir() else []:
                    os.unlink(link)
    unscoped, rotate = unscope(store.sops)
    changed, stuck = rekey_all(store.sops, identities)
    git.add(store.repo, [*changed, *(store.repo / r for r in rotate)])
    return FixResult(changed, stuck, unscoped, rotate)


def unscope(tree: SopsTree) -> tuple[list[str], list[str]]:
    """Unlink every foreign machine from machines' own secrets: (changes, secrets to rotate)."""
    changes: list[str] = []
    rotate: dict[str, None] = {}
    for found in list(foreign_links(tree)):
        done = unlink(tree, found)
        changes += done
        if done:
            rotate[str(found.secret)] = None
    return changes, list(rotate)
