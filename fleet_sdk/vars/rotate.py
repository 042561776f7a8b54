"""`fleet vars rotate`: generate a generator's values anew, with what derives from them, and say which
machines must receive them.

A rotation is a forced generate (selection: the requested generators whatever their state, plus
every generator depending on one that runs and has a value to replace). What it adds is consent and
an account: a rotation that would also replace values derived from the rotated one (certificates
signed by a CA, say) is refused unless `all_dependents` says so, naming them; and the machines
declaring anything regenerated are named, since their next deploy (`pulumi up`: the deploy step's
secrets or closure trigger changes for them and no other) delivers the new values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fleet_sdk.errors import SpecError
from fleet_sdk.spec import Fleet
from fleet_sdk.tools.runner import Runner
from fleet_sdk.vars.generate import GenerateOptions, GenerateResult, Progress, generate
from fleet_sdk.vars.selection import Node, closure, fleet_graph, select
from fleet_sdk.vars.store import GeneratorId, VarsStore


@dataclass(frozen=True)
class Rotation:
    """What a rotation regenerates: the generators asked for, those derived from them, and the machines
    that receive new values (every machine declaring one of them)."""

    requested: tuple[GeneratorId, ...]
    dependents: tuple[GeneratorId, ...]
    machines: tuple[str, ...]
    scope: tuple[str, ...] = field(default=())  # the machines whose generators the run selects from


def plan_rotation(store: VarsStore, fleet: Fleet, machine: str | None, names: Iterable[str]) -> Rotation:
    """The rotation of generators `names`: of `machine` (per-machine generators), or shared ones
    when `machine` is None. Refuses, naming machine and generator, anything that is not there."""
    names = sorted(set(names))
    if not names:
        raise SpecError("name the generator to rotate: `fleet vars rotate MACHINE GEN` or `--shared GEN`")
    nodes = fleet_graph(fleet)
    if machine is None:
        wanted = {GeneratorId(n, None) for n in names}
        for name in names:
            _check_shared(nodes, name)
        scope = sorted({m for gid in wanted for m in nodes[gid].machines})
    else:
        fleet.machine(machine)  # raises naming the unknown machine
        wanted = {GeneratorId(n, machine) for n in names}
        for name in names:
            _check_own(fleet, nodes, machine, name)
        scope = [machine]
    steps = select(fleet, lambda n: store.complete(n.gid, n.generator), scope, names)
    chosen = {n.gid for n in steps}
    if not wanted <= chosen:  # a same-named generator of the other kind only: checked above
        raise SpecError(f"cannot rotate {', '.join(sorted(map(str, wanted - chosen)))}")
    # what else runs: dependents with values (re-derived) and dependencies that are missing (made)
    derived = [n for n in steps if n.gid not in wanted and _depends_on(n, wanted, nodes)]
    machines = sorted({m for n in steps for m in n.machines} & fleet.enabled)  # a disabled one receives nothing
    return Rotation(
        requested=tuple(sorted(wanted, key=_key)),
        dependents=tuple(sorted((n.gid for n in derived), key=_key)),
        machines=tuple(machines),
        scope=tuple(scope),
    )


def rotate(
    repo: Path,
    fleet: Fleet,
    machine: str | None,
    names: Iterable[str],
    *,
    all_dependents: bool = False,
    options: GenerateOptions | None = None,
    progress: Progress | None = None,
    runner: Runner | None = None,
) -> tuple[Rotation, GenerateResult]:
    """Generate `names` anew (see plan_rotation), after checking consent for their dependents."""
    names = sorted(set(names))
    rotation = plan_rotation(VarsStore(repo), fleet, machine, names)
    if rotation.dependents and not all_dependents:
        listed = ", ".join(map(str, rotation.dependents))
        raise SpecError(
            f"rotating {', '.join(map(str, rotation.requested))} also replaces what is derived from it: {listed}; "
            "pass --all-dependents to rotate them too (left as they are they would no longer match)"
        )
    base = options or GenerateOptions()
    chosen = GenerateOptions(
        machines=list(rotation.scope),
        generators=names,
        regenerate=False,  # forced by naming them; persisted prompt answers are kept
        sandbox=base.sandbox,
        prompts_file=base.prompts_file,
        interactive=base.interactive,
        jobs=base.jobs,
        identities=base.identities,
    )
    return rotation, generate(repo, fleet, chosen, progress=progress, runner=runner)


def _check_shared(nodes: dict[GeneratorId, Node], name: str) -> None:
    if GeneratorId(name, None) in nodes:
        return
    owners = sorted(gid.machine for gid in nodes if gid.name == name and gid.machine)
    if owners:
        raise SpecError(
            f"generator {name!r} is per machine ({', '.join(owners)}), not shared: "
            f"rotate it with `fleet vars rotate MACHINE {name}`"
        )
    raise SpecError(f"no machine declares a generator {name!r}; nothing to rotate")


def _check_own(fleet: Fleet, nodes: dict[GeneratorId, Node], machine: str, name: str) -> None:
    if GeneratorId(name, machine) in nodes:
        return
    shared = nodes.get(GeneratorId(name, None))
    if shared is not None and machine in shared.machines:
        raise SpecError(
            f"generator {name!r} of machine {machine} is shared with {', '.join(shared.machines)}: "
            f"rotate it with `fleet vars rotate --shared {name}` (every machine sharing it receives the new value)"
        )
    declared = sorted(g.name for g in fleet.generators_of(machine))
    raise SpecError(
        f"machine {machine} declares no generator {name!r}; its generators are {', '.join(declared) or 'none'}"
    )


def _depends_on(node: Node, roots: set[GeneratorId], nodes: dict[GeneratorId, Node]) -> bool:
    """Whether `node` derives from one of `roots`, transitively."""
    return bool(roots & closure(node.deps, lambda gid: nodes[gid].deps if gid in nodes else ()))


def _key(gid: GeneratorId) -> tuple[str, str]:
    return (gid.machine or "", gid.name)
