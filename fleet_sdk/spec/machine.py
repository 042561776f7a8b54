"""A machine of the fleet: what it is, where it runs, how it is reached."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SerializeAsAny, StrictBool, field_validator, model_validator

from fleet_sdk import targets
from fleet_sdk.catalog import ServerShape
from fleet_sdk.errors import SpecError
from fleet_sdk.spec.deploy import Deploy
from fleet_sdk.spec.disks import DiskLayout
from fleet_sdk.spec.generators import Generator
from fleet_sdk.spec.hosts import Host, host_from_dict
from fleet_sdk.spec.names import IDENTIFIER, hostname_problem

MachineClass = Literal["nixos", "darwin"]
SYSTEMS = ("x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin")


class Machine(BaseModel):
    """One machine. `host` is where it is provisioned; None for machines provisioned by hand."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    machine_class: MachineClass = "nixos"
    system: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    target_host: str | None = None
    enabled: StrictBool = True  # strict: "no" is not False
    # any kind of Host, dumped with its own fields (SerializeAsAny); a dict is read by its `kind`
    host: SerializeAsAny[Host] | None = None
    disks: DiskLayout | None = None  # partitioned by disko at install; checked against the host
    generators: tuple[Generator, ...] = ()  # vars of this machine (service roles may add more)
    # how the graph deploys it (spec.deploy); None: the graph does not deploy it
    deploy: Deploy | None = None
    # the install may wipe this machine although it runs NixOS: another disk layout, another host key
    reinstall: StrictBool = False
    # names this machine had before: its component gets Pulumi aliases, so its server is kept
    renamed_from: tuple[str, ...] = ()

    @field_validator("host", mode="before")
    @classmethod
    def _host_kind(cls, value: Any) -> Any:
        return host_from_dict(value)

    @model_validator(mode="after")
    def _check(self) -> Machine:
        problems = [f"machine {self.name!r}: {p}" for p in _machine_problems(self)]
        if problems:
            raise SpecError(problems)
        return self

    @property
    def shape(self) -> ServerShape | None:
        """The server type's shape (architecture, boot mode, disk) for cloud machines."""
        return self.host.shape() if self.host is not None else None

    @property
    def nix_system(self) -> str:
        if self.system:
            return self.system
        if self.shape:
            return self.shape.system
        return "aarch64-darwin" if self.machine_class == "darwin" else "x86_64-linux"

    @property
    def disk_bytes(self) -> int | None:
        """Size of the disk the machine is installed on, when its host tells."""
        return self.host.disk_bytes() if self.host is not None else None

    @property
    def target(self) -> targets.TargetHost | None:
        """The parsed `target_host` (user root unless it names one)."""
        return targets.TargetHost.parse(self.target_host) if self.target_host else None

    @property
    def cloud(self) -> bool:
        """Whether this machine gets cloud resources in the graph."""
        return self.enabled and self.host is not None


def _machine_problems(m: Machine) -> list[str]:
    problems: list[str] = []
    if p := hostname_problem(m.name):
        problems.append(f"name: {p}")
    for tag in m.tags:
        if not IDENTIFIER.match(tag):
            problems.append(f"tags: {tag!r} is not a valid tag: use letters, digits, '-' and '_'")
    problems += _renamed_problems(m)
    if m.system is not None and m.system not in SYSTEMS:
        problems.append(f"system: {m.system!r} is not one of {', '.join(SYSTEMS)}")
    if m.target_host is not None and (p := targets.problem(m.target_host)):
        problems.append(f"target_host: {p}")
    if m.deploy is not None:
        problems += m.deploy.problems(m.name, darwin=m.machine_class == "darwin")
        if m.host is None and m.target_host is None:
            problems.append(
                "deploy: the machine has no host and no target_host, so the deploy has no address; set target_host"
            )
    if m.machine_class == "darwin":
        if m.disks is not None:
            problems.append("disks: darwin machines are not partitioned by disko; remove disks")
        if m.host is not None:
            problems.append("host: darwin machines are not provisioned in a cloud; remove host")
        if m.system is not None and not m.system.endswith("-darwin"):
            problems.append(f"system: {m.system!r} is not a darwin system (aarch64-darwin or x86_64-darwin)")
        return problems
    if m.system is not None and not m.system.endswith("-linux"):
        problems.append(f"system: {m.system!r} is not a Linux system, but machine_class is nixos")
    if m.host is not None:
        problems += m.host.problems(m.name)
    shape = m.shape
    if shape and m.system and m.system != shape.system:
        problems.append(f"system: {m.system!r} does not match the {shape.name} host, which runs {shape.system}")
    if m.disks is not None:
        problems += _disk_problems(m, m.disks, shape)
    return problems


def _renamed_problems(m: Machine) -> list[str]:
    problems = [f"renamed_from: {old!r}: {p}" for old in m.renamed_from if (p := hostname_problem(old))]
    if m.name in m.renamed_from:
        problems.append(f"renamed_from: {m.name!r} is the machine's own name; list only the names it had before")
    if dup := sorted({old for old in m.renamed_from if m.renamed_from.count(old) > 1}):
        problems.append(f"renamed_from: {', '.join(map(repr, dup))} listed twice")
    return problems


def renamed_problems(machines: Iterable[Machine]) -> list[str]:
    """A machine's old name claimed by two machines, or still the name of a machine of the fleet."""
    machines = list(machines)
    names = {m.name for m in machines}
    claimed: dict[str, str] = {}
    problems: list[str] = []
    for m in machines:
        for old in m.renamed_from:
            if old in names:
                problems.append(f"machine {m.name!r}: renamed_from: {old!r} is the name of another machine")
            elif old in claimed:
                problems.append(
                    f"machine {m.name!r}: renamed_from: {old!r} is claimed by machine {claimed[old]!r} too; "
                    "a machine has one new name"
                )
            else:
                claimed[old] = m.name
    return problems


def _disk_problems(m: Machine, disks: DiskLayout, shape: ServerShape | None) -> list[str]:
    """The layout checked against the host it will be installed on: boot mode and disk size."""
    if shape is None:
        return [f"disks: {p}" for p in disks.check()]
    size = m.disk_bytes
    host = f"{shape.name} ({shape.boot} boot" + (f", {size / 10**9:g} GB disk)" if size else ")")
    return [f"disks: {p} [on {host}]" for p in disks.check(boot=shape.boot, disk_bytes=size)]
