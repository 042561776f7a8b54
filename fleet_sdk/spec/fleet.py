"""The whole fleet: machines, service instances, and the checks that span them."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, model_validator

from fleet_sdk.errors import SpecError
from fleet_sdk.spec.deploy import deploy_problems
from fleet_sdk.spec.generators import Generator, find_cycle
from fleet_sdk.spec.machine import Machine, renamed_problems
from fleet_sdk.spec.names import IDENTIFIER
from fleet_sdk.spec.services import BUILTIN_ROLES, ServiceInstance, registered_services, service_of

PREDEFINED_TAGS = ("all", "nixos", "darwin")


class Fleet(BaseModel):
    """A fleet as one stack declares it. Constructing it validates it; nothing is created."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    domain: str | None = None
    description: str | None = None
    machines: tuple[Machine, ...] = ()
    instances: tuple[ServiceInstance, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Fleet:
        problems = _fleet_problems(self)
        if problems:
            raise SpecError(problems)
        return self

    def machine(self, name: str) -> Machine:
        for m in self.machines:
            if m.name == name:
                return m
        raise SpecError(f"fleet {self.name!r}: no machine {name!r}; machines are {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.machines]

    @property
    def enabled(self) -> set[str]:
        """The names of the enabled machines (fleet:enabled, Machine.enabled)."""
        return {m.name for m in self.machines if m.enabled}

    def instance(self, name: str) -> ServiceInstance:
        for i in self.instances:
            if i.name == name:
                return i
        raise SpecError(f"fleet {self.name!r}: no service instance {name!r}")

    def members(self, instance: str, role: str) -> list[str]:
        """Machines playing `role` in `instance`: named machines plus carriers of its tags, sorted."""
        r = self.instance(instance).roles.get(role)
        if r is None:
            return []
        tagged = {m.name for m in self.machines if set(r.tags) & set(effective_tags(m))}
        return sorted(set(r.machines) | tagged)

    def generators_of(self, machine: str | Machine) -> list[Generator]:
        """The machine's generators: its own plus those of every role it plays, each name once.
        Pass the Machine itself where you have it: looking it up by name scans the fleet."""
        m = machine if isinstance(machine, Machine) else self.machine(machine)
        found: dict[str, Generator] = {g.name: g for g in m.generators}
        for inst in self.instances:
            for role_name, role in inst.roles.items():
                if role.generators and m.name in self.members(inst.name, role_name):
                    for g in role.generators:
                        found.setdefault(g.name, g)
            service = service_of(inst)
            if service is not None:
                for g in service.generators(self, inst, m.name):
                    found.setdefault(g.name, g)
        return [found[n] for n in sorted(found)]

    def with_enabled(self, names: Iterable[str] | None) -> Fleet:
        """The same fleet where exactly `names` have cloud resources (None: all machines)."""
        if names is None:
            return self
        wanted = list(names)
        unknown = [n for n in wanted if n not in self.names]
        if unknown:
            raise SpecError(
                f"fleet:enabled names {', '.join(map(repr, unknown))}, not machines of fleet "
                f"{self.name!r}; machines are {', '.join(self.names)}"
            )
        machines = tuple(m.model_copy(update={"enabled": m.name in wanted}) for m in self.machines)
        return self.model_copy(update={"machines": machines})


def effective_tags(m: Machine) -> list[str]:
    """A machine's tags plus the ones clan gives every machine (`all` and its class)."""
    return sorted(set(m.tags) | {"all", m.machine_class})


def _fleet_problems(fleet: Fleet) -> list[str]:
    problems: list[str] = []
    if not IDENTIFIER.match(fleet.name):
        problems.append(f"fleet {fleet.name!r}: name: use letters, digits, '-' and '_'")
    seen: set[str] = set()
    for m in fleet.machines:
        if m.name in seen:
            problems.append(f"machine {m.name!r}: name: declared twice; machine names must be unique")
        seen.add(m.name)
    problems += deploy_problems(fleet.machines) + renamed_problems(fleet.machines)
    carried = {t for m in fleet.machines for t in effective_tags(m)}
    instance_names: set[str] = set()
    for inst in fleet.instances:
        where = f"instance {inst.name!r}"
        if not IDENTIFIER.match(inst.name):
            problems.append(f"{where}: name: use letters, digits, '-' and '_'")
        if inst.name in instance_names:
            problems.append(f"{where}: name: declared twice; instance names must be unique")
        instance_names.add(inst.name)
        known_roles = BUILTIN_ROLES.get(inst.module_name) if inst.input is None else None
        for role_name, role in inst.roles.items():
            at = f"{where}: roles.{role_name}"
            if known_roles is not None and role_name not in known_roles:
                problems.append(
                    f"{at}: service {inst.module_name!r} has no role {role_name!r}; "
                    f"its roles are {', '.join(known_roles)}"
                )
            for name in role.machines:
                if name not in seen:
                    problems.append(f"{at}.machines: {name!r} is not a machine of this fleet")
            for tag in role.tags:
                if tag not in carried:
                    problems.append(
                        f"{at}.tags: no machine carries tag {tag!r}; tag a machine or remove it from the role"
                    )
    if not problems:
        for inst in fleet.instances:
            service = service_of(inst)
            if service is not None:
                problems += service.problems(fleet, inst)
    if not problems:
        problems += _generator_problems(fleet)
    return problems


def _generator_problems(fleet: Fleet) -> list[str]:
    """Across machines: shared generators declared alike, dependencies that exist, no cycles."""
    problems: list[str] = []
    shared: dict[str, tuple[str, Generator]] = {}
    per_machine = {m.name: fleet.generators_of(m) for m in fleet.machines}
    for machine, generators in per_machine.items():
        for g in generators:
            if not g.share:
                continue
            first = shared.setdefault(g.name, (machine, g))
            if first[1].definition() != g.definition():
                problems.append(
                    f"generator {g.name!r}: machines {first[0]!r} and {machine!r} declare this shared generator "
                    "differently (files, prompts, dependencies, validation or script); make them equal"
                )
    services = registered_services()
    for machine, generators in per_machine.items():
        own = {g.name: g for g in generators}
        for g in generators:
            for service in services:
                problems += service.generator_problems(machine, g)
            for dep in g.dependencies:
                target = own.get(dep) or (shared[dep][1] if dep in shared else None)
                if target is None:
                    problems.append(
                        f"machine {machine!r}: generator {g.name!r}: dependency {dep!r} is no generator of this "
                        "machine and no shared generator"
                    )
                elif g.share and not target.share:
                    problems.append(
                        f"generator {g.name!r}: a shared generator cannot depend on the per-machine generator {dep!r}"
                    )
        edges = {g.name: [d for d in g.dependencies if d in own] for g in generators}
        if cycle := find_cycle(edges):
            problems.append(f"machine {machine!r}: generators depend on each other in a cycle: {' -> '.join(cycle)}")
    return problems
