"""How the graph deploys a machine (`Machine.deploy`): where its system is built, whether it may
reboot, how long a new system has to prove itself and by which checks, what a failed unit does, and
which machines it waits for (waves). A machine whose `deploy` is None is not deployed by the graph.

The deploy engine's own settings (deadlines and policies, fleet_sdk.deploy.settings.DeploySettings)
are made from these by fleet_sdk.deploy.from_spec. Problems start with the field (`deploy.…`);
Machine and Fleet prefix the machine's name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, StrictInt

from fleet_sdk.spec.generators import find_cycle

if TYPE_CHECKING:
    from fleet_sdk.spec.machine import Machine

BuildOn = Literal["local", "remote"]
RebootPolicy = Literal["never", "if-needed"]
UnitFailurePolicy = Literal["rollback", "keep"]

CONFIRM_TIMEOUT = (1, 600)  # seconds: new ssh connections are tried this long after the switch
# a systemd unit name (systemd.unit(5)): no leading '-', which systemctl would read as an option
UNIT = re.compile(r"^[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]{0,254}$")


class HealthChecks(BaseModel):
    """What must hold on the target after the switch, or the deploy rolls back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commands: tuple[str, ...] = ()  # shell commands run on the target; each must exit 0
    units: tuple[str, ...] = ()  # systemd units that must be active (NixOS machines)

    def problems(self, darwin: bool) -> list[str]:
        problems: list[str] = []
        for command in self.commands:
            if not command.strip():
                problems.append("deploy.health_checks.commands: an empty command checks nothing; remove it")
            elif "\0" in command:
                problems.append(f"deploy.health_checks.commands: {command!r} contains a NUL byte")
        if darwin and self.units:
            problems.append(
                "deploy.health_checks.units: darwin machines have no systemd units; check them with commands"
            )
        for unit in self.units:
            if not UNIT.match(unit):
                problems.append(
                    f"deploy.health_checks.units: {unit!r} is not a systemd unit name "
                    "(letters, digits, ':', '_', '.', '@', '\\' and '-', not starting with '-')"
                )
        problems += _twice("deploy.health_checks.units", self.units)
        return problems


class Deploy(BaseModel):
    """How the graph deploys one machine (`fleet machine deploy <m>`): its system is built here
    (`build_on="local"`) or on the target (`"remote"`); after a kernel change it reboots only with
    `reboot="if-needed"`; the new system must answer a new ssh connection within `confirm_timeout`
    seconds and pass `health_checks`, else the previous one is restored; a unit that fails to start
    rolls back (`on_unit_failure="rollback"`) or is kept (`"keep"`). `after` names machines whose
    deploy must succeed first (waves)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    build_on: BuildOn = "local"
    reboot: RebootPolicy = "never"
    confirm_timeout: StrictInt = 60
    health_checks: HealthChecks = HealthChecks()
    on_unit_failure: UnitFailurePolicy = "rollback"
    after: tuple[str, ...] = ()

    def problems(self, machine: str, darwin: bool) -> list[str]:
        """What is wrong with these settings on their own, for `machine`; each starts with the field."""
        problems: list[str] = []
        low, high = CONFIRM_TIMEOUT
        if not low <= self.confirm_timeout <= high:
            problems.append(f"deploy.confirm_timeout: {self.confirm_timeout} seconds is not between {low} and {high}")
        problems += self.health_checks.problems(darwin)
        if machine in self.after:
            problems.append(f"deploy.after: {machine!r} is the machine itself; a machine cannot deploy after itself")
        problems += _twice("deploy.after", self.after)
        return problems

    def settings(self) -> dict[str, object]:
        """What the deploy does, as data: a changed value re-runs the machine's deploy step (`after`,
        which only orders deploys, is left out)."""
        return self.model_dump(mode="json", exclude={"after"})


def _twice(field: str, values: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for value in values:
        if value in seen:
            problems.append(f"{field}: {value!r} is named twice; name it once")
        seen.add(value)
    return problems


def deploy_problems(machines: Sequence[Machine]) -> list[str]:
    """Across machines: each `deploy.after` names a machine of the fleet that the graph deploys, and
    no machines wait for each other in a cycle."""
    problems: list[str] = []
    by_name = {m.name: m for m in machines}
    for m in machines:
        for name in _after(m):
            other = by_name.get(name)
            if other is None:
                problems.append(f"machine {m.name!r}: deploy.after: {name!r} is not a machine of this fleet")
            elif other.deploy is None:
                problems.append(
                    f"machine {m.name!r}: deploy.after: {name!r} has no deploy settings, so the graph does not "
                    "deploy it; give it deploy=Deploy() or remove it from after"
                )
    edges = {m.name: [a for a in _after(m) if a in by_name] for m in machines if m.deploy}
    if cycle := find_cycle(edges):
        problems.append(
            f"machine {cycle[0]!r}: deploy.after: machines deploy after each other in a cycle: {' -> '.join(cycle)}"
        )
    return problems


def deploy_order(machines: Sequence[Machine]) -> list[Machine]:
    """The machines with deploy settings, each after the machines it names in `after` (the fleet
    checked there is no cycle), otherwise in the fleet's order."""
    pending = [m for m in machines if m.deploy is not None]
    placed: set[str] = set()
    ordered: list[Machine] = []
    while pending:
        ready = [m for m in pending if all(a in placed for a in _after(m))]
        if not ready:  # a cycle: refused by Fleet; keep the rest in order rather than loop
            ready = pending
        for m in ready:
            ordered.append(m)
            placed.add(m.name)
        pending = [m for m in pending if m.name not in placed]
    return ordered


def _after(m: Machine) -> tuple[str, ...]:
    return m.deploy.after if m.deploy is not None else ()
