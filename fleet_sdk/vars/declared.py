"""The generators a fleet declares: the stack's Python declarations merged with those of the flake
(clan's `clan.core.vars.generators` of each machine's configuration, fleet_sdk.vars.flake).

`with_flake_generators(fleet, flake_gens)` returns a copy of the fleet whose machines' `generators`
also hold their flake generators, so every user of `fleet.generators_of(m)` (vars generate, check and
list, deploy's uploaded secrets, the install's disk keys, the graph's vars step, `fleet plan`) sees
them as it sees the others. The rules, per machine and generator name:

- a flake generator replaces one of fleet_sdk's built-ins (`origin="stock"`: vars.stock, the ZeroTier
  service) silently: the flake is the truth, the built-ins a fallback for flakes without clan;
- against the stack's own Python declaration (`origin="python"`) one that declares the same files,
  prompts, dependencies, validation and share (clan's rule for shared generators, reference/clan.md
  §4.3; how it runs, a script or a finalScript, cannot be compared) is kept once, the flake's; a
  different one is an error naming both places;
- a shared generator is generated once for the fleet: every machine declaring it must agree (clan's
  rule); the flake's declaration is the one that runs, a built-in on another machine yields to it;
- a dependency on a generator neither the machine nor any machine as a shared one declares, a shared
  generator depending on a per-machine one, and a cycle are errors naming machine and generator.

`declared_fleet(runner, fleet, settings, mode)` is what the CLI and the graph call: the stack's flake
(fleet:flake) evaluated when it is on this machine and the closure probe is on (`fleet:closureProbe`),
"flake" forcing it, "python" skipping it; otherwise the fleet as declared in Python, with a note why.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fleet_sdk.errors import ConfigError, SpecError
from fleet_sdk.spec import Fleet, Machine
from fleet_sdk.spec.generators import Generator, find_cycle
from fleet_sdk.spec.services import registered_services
from fleet_sdk.tools.runner import Runner

if TYPE_CHECKING:
    from fleet_sdk.stack.settings import StackSettings

FlakeMode = Literal["auto", "flake", "python"]
# what two declarations of one generator must agree on (clan.md §4.3, plus share)
SHAPE = ("files", "prompts", "dependencies", "validation", "share")
_LOCAL_REF = ("/", ".", "path:", "git+file:")

# fleets this process merged: merging one again (the plan merges, then the graph it runs) is a no-op
_merged: weakref.WeakValueDictionary[int, Fleet] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class Declared:
    """The fleet with the generators it declares; `note` says why the flake's are not in it."""

    fleet: Fleet
    from_flake: bool
    note: str | None = None


def shape(g: Generator) -> dict[str, Any]:
    """What two declarations of one generator must agree on: its files (without owner, group and mode),
    prompts, dependencies, validation hash and share."""
    definition = g.definition()
    return {key: definition[key] for key in SHAPE}


def flake_place(machine: Machine, name: str) -> str:
    configurations = "darwinConfigurations" if machine.machine_class == "darwin" else "nixosConfigurations"
    return f"the flake ({configurations}.{machine.name}.config.clan.core.vars.generators.{name})"


def python_place(fleet: Fleet, machine: Machine, g: Generator, program: str | None) -> str:
    """Where the stack declares `g` for `machine`: its Machine, a service role, a built-in service."""
    where = program or "the stack's program"
    if g.origin == "flake":
        return flake_place(machine, g.name)
    if any(x.name == g.name for x in machine.generators):
        what = "a built-in of fleet_sdk in " if g.origin == "stock" else ""
        return f"Python ({what}{where}: Machine {machine.name!r} generators)"
    for inst in fleet.instances:
        for role_name, role in inst.roles.items():
            if any(x.name == g.name for x in role.generators) and machine.name in fleet.members(inst.name, role_name):
                return f"Python ({where}: instance {inst.name!r} role {role_name!r} generators)"
    return f"Python ({where}: a service instance of fleet_sdk)"


def differences(a: Generator, b: Generator) -> str:
    """What differs between two declarations, e.g. "files: k, k.pub (public) ≠ k"."""
    sa, sb = shape(a), shape(b)
    return "; ".join(f"{key}: {_show(key, sa[key])} ≠ {_show(key, sb[key])}" for key in SHAPE if sa[key] != sb[key])


def _show(key: str, value: Any) -> str:
    if key == "files":
        shown = [
            name
            + (" (public)" if not secret else "")
            + (" (not deployed)" if not deploy else "")
            + (f" (for {needed_for})" if needed_for != "services" else "")
            for name, secret, deploy, needed_for in value
        ]
        return ", ".join(shown) or "none"
    if key == "prompts":
        return (
            ", ".join(f"{name} ({kind}{', persisted' if persist else ''})" for name, kind, persist in value) or "none"
        )
    if key == "dependencies":
        return ", ".join(value) or "none"
    if key == "validation":
        return f"hash {value[:12]}…" if value else "none"
    return str(value).lower()


def with_flake_generators(
    fleet: Fleet, flake_gens: Mapping[str, tuple[Generator, ...]], *, program: str | None = None
) -> Fleet:
    """A copy of `fleet` whose machines also declare their generators of the flake (`flake_gens`:
    machine -> its flake generators), by the rules of the module doc; SpecError lists every conflict.
    `program` names the stack's program in messages (e.g. stacks/prod.py)."""
    if unknown := sorted(set(flake_gens) - set(fleet.names)):
        raise SpecError(f"flake generators of {', '.join(map(repr, unknown))}, which are no machines of {fleet.name!r}")
    problems: list[str] = []
    own: dict[str, dict[str, Generator]] = {}
    for m in fleet.machines:
        declared = {g.name: g for g in fleet.generators_of(m)}
        mine = {g.name: g for g in m.generators}
        seen: set[str] = set()
        for g in flake_gens.get(m.name, ()):
            f = g if g.origin == "flake" else g.model_copy(update={"origin": "flake"})
            if f.name in seen:
                problems.append(f"machine {m.name!r}: generator {f.name!r} is declared twice in the flake")
                continue
            seen.add(f.name)
            p = declared.get(f.name)
            if p is not None and p.origin == "python" and shape(p) != shape(f):
                problems.append(
                    f"machine {m.name!r}: generator {f.name!r} is declared in {python_place(fleet, m, p, program)} "
                    f"and in {flake_place(m, f.name)} with different definitions ({differences(p, f)}); "
                    "remove the Python declaration (the flake's is used) or make them equal"
                )
                continue
            mine[f.name] = f
        own[m.name] = mine
    if problems:
        raise SpecError(problems)
    merged = _with_generators(fleet, own)
    merged = _shared_from_flake(merged, program)
    if problems := declaration_problems(merged):
        raise SpecError(problems)
    _merged[id(merged)] = merged
    return merged


def _with_generators(fleet: Fleet, own: Mapping[str, Mapping[str, Generator]]) -> Fleet:
    machines = tuple(
        m.model_copy(update={"generators": tuple(own[m.name].values())}) if m.name in own else m for m in fleet.machines
    )
    return fleet.model_copy(update={"machines": machines})


def _shared_from_flake(fleet: Fleet, program: str | None) -> Fleet:
    """Every machine's declaration of a shared generator the flake declares becomes the flake's (the
    first machine's, as clan runs a shared generator once); a different one is an error, but for a
    built-in, which yields."""
    per_machine = {m.name: fleet.generators_of(m) for m in fleet.machines}
    first: dict[str, tuple[Machine, Generator]] = {}
    for m in fleet.machines:
        for g in per_machine[m.name]:
            if g.share and g.origin == "flake":
                first.setdefault(g.name, (m, g))
    problems: list[str] = []
    own: dict[str, dict[str, Generator]] = {}
    for m in fleet.machines:
        for g in per_machine[m.name]:
            if not g.share or g.name not in first or first[g.name][1] is g:
                continue
            home, f = first[g.name]
            if shape(g) != shape(f) and g.origin != "stock":
                problems.append(
                    f"generator {g.name!r}: machines {home.name!r} in {flake_place(home, g.name)} and {m.name!r} "
                    f"in {python_place(fleet, m, g, program)} declare this shared generator differently "
                    f"({differences(f, g)}); make them equal: every machine declaring a shared generator must "
                    "agree on its files, prompts, dependencies and validation"
                )
            elif g.origin != "flake":
                own.setdefault(m.name, {x.name: x for x in m.generators})[g.name] = f
    if problems:
        raise SpecError(problems)
    return _with_generators(fleet, own) if own else fleet


def declaration_problems(fleet: Fleet) -> list[str]:
    """Dependencies that no generator answers, shared generators depending on per-machine ones,
    cycles, and what a service refuses (a machine declaring another's ZeroTier identity)."""
    problems: list[str] = []
    per_machine = {m.name: fleet.generators_of(m) for m in fleet.machines}
    shared = {g.name: g for generators in per_machine.values() for g in generators if g.share}
    services = registered_services()
    for m in fleet.machines:
        generators = per_machine[m.name]
        own = {g.name: g for g in generators}
        for g in generators:
            at = f"machine {m.name!r}: generator {g.name!r}" + (
                f" declared in {flake_place(m, g.name)}" if g.origin == "flake" else ""
            )
            for service in services:
                problems += service.generator_problems(m.name, g)
            for dep in g.dependencies:
                target = own.get(dep) or shared.get(dep)
                if target is None:
                    problems.append(
                        f"{at}: dependency {dep!r} is no generator of this machine and no shared generator of any "
                        "machine; declare it or remove the dependency"
                    )
                elif g.share and not target.share:
                    problems.append(f"{at}: a shared generator cannot depend on the per-machine generator {dep!r}")
        edges = {g.name: [d for d in g.dependencies if d in own] for g in generators}
        if cycle := find_cycle(edges):
            problems.append(f"machine {m.name!r}: generators depend on each other in a cycle: {' -> '.join(cycle)}")
    return problems


def declared_fleet(
    runner: Runner,
    fleet: Fleet,
    settings: StackSettings,
    mode: FlakeMode = "auto",
    *,
    program: str | None = None,
    cache_home: Path | None = None,
) -> Declared:
    """`fleet` with the generators of the stack's flake, as `mode` says (module doc): "auto" when the
    flake is on this machine and fleet:closureProbe is on, "flake" always (ConfigError when the flake
    is not there), "python" never."""
    from fleet_sdk.deploy import flakesource
    from fleet_sdk.deploy.probe import PROBE_KEY, probe_enabled, stack_flake
    from fleet_sdk.vars.flake import flake_generators

    if _merged.get(id(fleet)) is fleet:
        return Declared(fleet, True)
    if mode == "python":
        return Declared(fleet, False, "generators from the stack's Python only (--no-flake)")
    flake = stack_flake(settings)
    source = flakesource.locate(flake)
    if isinstance(source, str):
        if mode == "flake" and flake.startswith(_LOCAL_REF):
            raise ConfigError(
                f"--from-flake: {source}; point fleet:flake (now {settings.flake!r}) at the fleet's flake"
            )
        if mode == "auto":
            return Declared(fleet, False, f"generators from the stack's Python only: {source}")
    elif mode == "auto" and not probe_enabled(settings.values):
        note = f"generators from the stack's Python only: {PROBE_KEY} is false (--from-flake evaluates the flake)"
        return Declared(fleet, False, note)
    classes = {m.name: m.machine_class for m in fleet.machines}
    found = flake_generators(runner, flake, classes, cache_home=cache_home)
    return Declared(with_flake_generators(fleet, found, program=program), True)
