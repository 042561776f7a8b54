"""Reading the vars of a fleet: check, list, get, set and fix (reference/clan.md §4.4, §4.5).

`set` and `fix` write under the repository lock (vars.lock) and `git add` what they wrote; `check`
also reports what an interrupted writer left (vars.recovery) and `fix` repairs it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from typing_extensions import override

from fleet_sdk.errors import FleetError, SopsError, VarsWriteError, VarValueError
from fleet_sdk.install import records
from fleet_sdk.sops import keychange
from fleet_sdk.sops.document import recipients
from fleet_sdk.sops.tree import SopsTree, rekey_all
from fleet_sdk.spec import Fleet
from fleet_sdk.spec.generators import Generator, GeneratorFile
from fleet_sdk.tools import git
from fleet_sdk.tools.runner import LOCAL, Runner
from fleet_sdk.vars import validate
from fleet_sdk.vars.lock import repository_lock
from fleet_sdk.vars.recovery import leftovers, recover, units, unlinked_secrets, untracked
from fleet_sdk.vars.scoping import Revoked, departed, foreign_links, revoke, unlink
from fleet_sdk.vars.selection import fleet_graph
from fleet_sdk.vars.store import GeneratorId, VarsStore, generator_id
from fleet_sdk.vars.writes import reason


@dataclass(frozen=True)
class Finding:
    machine: str  # "" for a finding about a folder of the repository
    var: str  # generator/file, or the folder relative to the repository
    problem: str

    @override
    def __str__(self) -> str:
        return f"{self.machine}: {self.var}: {self.problem}" if self.machine else f"{self.var}: {self.problem}"


def check(
    store: VarsStore, fleet: Fleet, machines: list[str] | None = None, runner: Runner | None = None
) -> list[Finding]:
    runner = LOCAL if runner is None else runner
    findings = []
    wanted = set(machines or fleet.names)
    for change in keychange.changes(store.sops):
        if change.machine in wanted:
            findings.append(
                Finding(
                    change.machine,
                    change.key_file,
                    f"{change.evidence()}: if you replaced the key on purpose run "
                    "`fleet vars fix --accept-key-change`, else restore it from git",
                )
            )
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
                reaches = gid.machine is not None or fleet.machine(machine).enabled  # `fix` unlinks disabled ones
                if f.deploy and reaches and not store.sops.links_machine(folder, machine):
                    findings.append(Finding(machine, var, "the machine cannot decrypt it: run `fleet vars fix`"))
    return findings + _departed_findings(store, fleet, machines) + _repository_findings(store, fleet, machines, runner)


def _departed_findings(store: VarsStore, fleet: Fleet, machines: list[str] | None) -> list[Finding]:
    """Shared secrets still encrypted to a machine that left the fleet, is disabled or no longer
    declares them (all of them, or those of the `machines`)."""
    enabled, findings = fleet.enabled, []
    for gid, node in fleet_graph(fleet).items():
        if gid.machine is not None or (machines is not None and not set(machines) & set(node.machines)):
            continue
        for f in node.generator.all_files:
            folder = store.file_dir(gid, f.name)
            for m in departed(store.sops, folder, set(node.machines) & enabled) if f.secret and f.deploy else []:
                problem = "still encrypted to it, not an enabled machine declaring it: run `fleet vars fix`"
                findings.append(Finding(m, f"{node.generator.name}/{f.name}", problem))
    return findings


def _repository_findings(store: VarsStore, fleet: Fleet, machines: list[str] | None, runner: Runner) -> list[Finding]:
    """Leftovers of interrupted writes, and vars and keys git does not track (a flake cannot see
    them: a run killed before its `git add`, or files added by hand)."""
    repo = store.repo
    findings = [
        Finding("", str(p.relative_to(repo)), "left by an interrupted write, never used: run `fleet vars fix`")
        for p in leftovers(repo)
    ]
    if (index_lock := git.stale_index_lock(runner, repo)) is not None:
        findings.append(
            Finding("", str(index_lock), "left by a killed git command (none has it open): run `fleet vars fix`")
        )
    findings += [
        Finding(
            "",
            str(d.relative_to(repo)),
            "no member links (an interrupted write): run `fleet vars fix` to link those it is encrypted to",
        )
        for d in unlinked_secrets(store.sops)
    ]
    wanted = None if machines is None else _folders_of(fleet, machines)
    for folder, count in units(repo, untracked(repo, runner)).items():
        if wanted is None or folder in wanted or folder.parts[:2] == ("sops", "users"):
            files, them = ("1 file", "it") if count == 1 else (f"{count} files", "them")
            findings.append(
                Finding(
                    "",
                    str(folder),
                    f"{files} not tracked by git, so the flake cannot see {them}: "
                    f"run `fleet vars fix` to `git add` {them}",
                )
            )
    return findings


def _folders_of(fleet: Fleet, machines: list[str]) -> set[Path]:
    """The vars and sops folders (relative) that belong to the machines."""
    folders = set()
    for machine in machines:
        folders |= {Path("vars", generator_id(g, machine).rel_dir) for g in fleet.generators_of(machine)}
        folders |= {Path("sops", "machines", machine), Path("sops", "secrets", f"{machine}-age.key")}
    return folders


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


@dataclass(frozen=True)
class SetResult:
    folder: Path
    notes: list[str]  # what else the user should set


def set_var(
    store: VarsStore,
    fleet: Fleet,
    machine: str,
    var: str,
    value: bytes,
    identities: list[str],
    runner: Runner | None = None,
) -> SetResult:
    """Store one var from the user, checked as a generated one would be (vars.validate)."""
    runner = LOCAL if runner is None else runner
    gid, g, f = find_var(fleet, machine, var)
    validate.check(machine, g, f, value)
    with repository_lock(store.repo, "fleet vars set"):
        notes = _check_pair(store, machine, gid, g, f, value, identities)
        admin = store.sops.admin(identities) if f.secret else ""
        owners = machines_of(fleet, gid)
        written = []
        try:
            if f.secret and f.deploy:
                for m, (_, created) in store.sops.ensure_machine_keys(owners, identities).items():
                    if created:
                        written += [store.sops.member_dir("machines", m), store.sops.secret_dir(f"{m}-age.key")]
            folder = store.set_file(gid, f, value, owners, admin)
        except OSError as e:
            raise VarsWriteError(
                f"machine {machine!r}: {g.name}/{f.name}: cannot write {reason(e)}. Free space or make the "
                "repository writable, run `fleet vars set` again, then `fleet vars check`"
            ) from None
        git.add(runner, store.repo, [*written, folder])
    return SetResult(folder, notes)


def _check_pair(
    store: VarsStore,
    machine: str,
    gid: GeneratorId,
    g: Generator,
    f: GeneratorFile,
    value: bytes,
    identities: list[str],
) -> list[str]:
    """A public ssh key must match its stored private half (raises); a new private key whose stored
    public half differs gets a note to set that too."""
    pair = validate.ssh_pair(g, f)
    if pair is None:
        return []
    private_name, public_name = pair
    files = {x.name: x for x in g.all_files}
    if f.name == public_name:
        private_file = files.get(private_name)
        if private_file is None or not store.exists(gid, private_file):
            return []
        try:
            private = store.read(gid, private_file, identities) or b""
        except SopsError as e:
            raise VarValueError(
                f"machine {machine!r}: {g.name}/{f.name}: cannot check it against the stored private half "
                f"{g.name}/{private_name} ({e}); nothing was stored. Run it with an admin key that opens it"
            ) from None
        try:
            stored = validate.public_of_private(private)
        except ValueError:
            return []  # the stored private half is no key: nothing to match
        if stored != validate.public_of_line(value):
            raise validate.mismatch(machine, g, f)
        return []
    public = store.public(gid, public_name)
    try:
        same = public is not None and validate.public_of_line(public) == validate.public_of_private(value)
    except ValueError:
        same = False
    if public is None or same:
        return []
    return [
        f"{g.name}/{public_name} of machine {machine!r} is not the public half of the new key: set it too "
        f"(ssh-keygen -y -f KEY | fleet vars set {machine} {g.name}/{public_name})"
    ]


@dataclass(frozen=True)
class FixResult:
    rekeyed: list[Path]
    stuck: list[Path]  # not encrypted to the operator's key
    unscoped: list[str]  # what was unlinked from machines' own secrets, as sentences
    rotate: list[str]  # those secrets (relative folders): another machine could read them
    removed: list[Path] = field(default_factory=list)  # leftovers of interrupted writes
    tracked: list[Path] = field(default_factory=list)  # folders (relative) whose untracked files were added
    accepted: list[keychange.KeyChange] = field(default_factory=list)  # changed machine keys re-keyed to
    # machines unlinked from shared secrets: they left the fleet, were disabled or no longer declare them
    revoked: list[Revoked] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)  # machines whose known_hosts line was dropped

    def rotate_shared(self) -> dict[str, list[str]]:
        """Machine -> the shared generators whose secrets it could read until now, to rotate."""
        out: dict[str, list[str]] = {}
        for r in self.revoked:
            if r.generator not in out.setdefault(r.machine, []):
                out[r.machine].append(r.generator)
        return out


def fix(
    store: VarsStore,
    fleet: Fleet,
    identities: list[str],
    accept_key_change: bool = False,
    runner: Runner | None = None,
) -> FixResult:
    """Repair what interrupted writers left, link every declaring machine to its deploy secrets (and
    unlink deploy=false ones), unlink machines that are not enabled machines declaring a shared
    generator from its secrets, unlink machines from other machines' own secrets, drop the
    known_hosts lines of machines that are not enabled machines of the fleet, then re-key every
    secret whose recipients differ from its links; `git add` all of it. A machine key that changed
    under its secrets stops it before anything changes, unless `accept_key_change`."""
    runner = LOCAL if runner is None else runner
    with repository_lock(store.repo, "fleet vars fix"):
        accepted = keychange.refuse_unconfirmed(store.sops, accept_key_change)
        removed, added = recover(store.repo, runner)
        result = _fix_locked(store, fleet, identities, runner)
    return dataclasses.replace(result, removed=removed, tracked=list(units(store.repo, added)), accepted=accepted)


def fix_links(
    repo: Path, identities: list[str], accept_key_change: bool = False, runner: Runner | None = None
) -> FixResult:
    """`fix` without a fleet: repairs, unscoping and re-keying only."""
    runner = LOCAL if runner is None else runner
    with repository_lock(repo, "fleet vars fix"):
        accepted = keychange.refuse_unconfirmed(SopsTree(repo), accept_key_change)
        removed, added = recover(repo, runner)
        tree = SopsTree(repo)
        unscoped, rotate = unscope(tree)
        changed, stuck = rekey_all(tree, identities)
        git.add(runner, repo, [*changed, *(repo / r for r in rotate)])
    return FixResult(changed, stuck, unscoped, rotate, removed, list(units(repo, added)), accepted)


def _fix_locked(store: VarsStore, fleet: Fleet, identities: list[str], runner: Runner) -> FixResult:
    relinked = []  # links changed without a re-key (the recipients were right) are staged too
    revoked: list[Revoked] = []
    unscoped, rotate = unscope(store.sops)  # first: a machine's own secret another reads is reported as such
    enabled = fleet.enabled
    for gid, node in fleet_graph(fleet).items():
        # a shared secret reaches the enabled machines declaring it; a machine's own, that machine
        members = set(node.machines) if gid.machine is not None else set(node.machines) & enabled
        for f in node.generator.all_files:
            folder = store.file_dir(gid, f.name)
            if not f.secret or not (folder / "secret").is_file():
                continue
            if f.deploy:
                for m in sorted(members):
                    if (store.sops.member_dir("machines", m) / "key.json").is_file() and not (
                        folder / "machines" / m
                    ).is_symlink():
                        store.sops.add_member(folder, "machines", m)
                        relinked.append(folder)
                if gid.machine is None and (gone := revoke(store.sops, folder, node.generator.name, members)):
                    revoked += gone
                    relinked.append(folder)
            else:
                links = folder / "machines"
                for link in links.iterdir() if links.is_dir() else []:
                    os.unlink(link)
                    relinked.append(folder)
    changed, stuck = rekey_all(store.sops, identities)
    forgotten = [m for m in records.known_host_machines(store.repo) if m not in enabled]
    hosts = records.drop_known_hosts(store.repo, set(forgotten))
    git.add(runner, store.repo, [*relinked, *changed, *(store.repo / r for r in rotate), *([hosts] if hosts else [])])
    return FixResult(changed, stuck, unscoped, rotate, revoked=revoked, forgotten=forgotten)


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
