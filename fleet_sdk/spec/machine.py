"""A machine of the fleet: what it is, where it runs, how it is reached."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from fleet_sdk.catalog import ServerShape, gcp, hetzner
from fleet_sdk.disko import DiskLayout
from fleet_sdk.errors import SpecError
from fleet_sdk.spec import targets
from fleet_sdk.spec.generators import Generator
from fleet_sdk.spec.hosts import GcpHost, HetznerHost, open_port_problems
from fleet_sdk.spec.names import GCE_NAME, IDENTIFIER, LABEL_KEY, LABEL_VALUE, hostname_problem

MachineClass = Literal["nixos", "darwin"]
SYSTEMS = ("x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin")
GCE_BOOT_DISK_GB = (10, 65536)  # NixOS needs 10 GB; a persistent disk holds at most 64 TiB


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
    host: Annotated[HetznerHost | GcpHost, Field(discriminator="kind")] | None = None
    disks: DiskLayout | None = None  # partitioned by disko at install; checked against the host
    generators: tuple[Generator, ...] = ()  # vars of this machine (service roles may add more)

    @model_validator(mode="after")
    def _check(self) -> Machine:
        problems = [f"machine {self.name!r}: {p}" for p in _machine_problems(self)]
        if problems:
            raise SpecError(problems)
        return self

    @property
    def shape(self) -> ServerShape | None:
        """The server type's shape (architecture, boot mode, disk) for cloud machines."""
        if isinstance(self.host, HetznerHost):
            return hetzner.server_type(self.host.server_type)
        if isinstance(self.host, GcpHost):
            found = gcp.machine_type(self.host.machine_type)
            return found[0] if found else None
        return None

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
        if isinstance(self.host, GcpHost):
            return self.host.boot_disk_gb * 10**9
        shape = self.shape
        return shape.disk_gb * 10**9 if shape and shape.disk_gb else None

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
    if m.system is not None and m.system not in SYSTEMS:
        problems.append(f"system: {m.system!r} is not one of {', '.join(SYSTEMS)}")
    if m.target_host is not None and (p := targets.problem(m.target_host)):
        problems.append(f"target_host: {p}")
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
    if isinstance(m.host, HetznerHost):
        problems += _hetzner_problems(m, m.host)
    elif isinstance(m.host, GcpHost):
        problems += _gcp_problems(m, m.host)
    shape = m.shape
    if shape and m.system and m.system != shape.system:
        problems.append(f"system: {m.system!r} does not match the {shape.name} host, which runs {shape.system}")
    if m.disks is not None:
        problems += _disk_problems(m, m.disks, shape)
    return problems


def _disk_problems(m: Machine, disks: DiskLayout, shape: ServerShape | None) -> list[str]:
    """The layout checked against the host it will be installed on: boot mode and disk size."""
    if shape is None:
        return [f"disks: {p}" for p in disks.check()]
    size = m.disk_bytes
    host = f"{shape.name} ({shape.boot} boot" + (f", {size / 10**9:g} GB disk)" if size else ")")
    return [f"disks: {p} [on {host}]" for p in disks.check(boot=shape.boot, disk_bytes=size)]


def _labels_problems(labels: dict[str, str]) -> list[str]:
    problems = []
    for key, value in labels.items():
        if not LABEL_KEY.match(key):
            problems.append(f"host.labels: {key!r} is not a valid label key")
        if not LABEL_VALUE.match(value):
            problems.append(f"host.labels[{key!r}]: {value!r} is not a valid label value")
    return problems


def _gcp_label_char(c: str) -> bool:
    # GCE: lower-case letters (international ones too), digits, '_' and '-'
    return c.isdigit() or c in "_-" or (c.isalpha() and not c.isupper())


def _gcp_labels_problems(labels: dict[str, str]) -> list[str]:
    """GCE's rules, stricter than Hetzner's: keys start with a lower-case letter, keys and values
    are at most 63 lower-case letters, digits, '_' and '-' (no '.', no upper case)."""
    problems = []
    rule = "use at most 63 lower-case letters, digits, '_' and '-'"
    for key, value in labels.items():
        if not (0 < len(key) <= 63 and key[0].isalpha() and not key[0].isupper() and all(map(_gcp_label_char, key))):
            problems.append(f"host.labels: {key!r} is not a GCE label key; start with a lower-case letter and {rule}")
        if not (len(value) <= 63 and all(map(_gcp_label_char, value))):
            problems.append(f"host.labels[{key!r}]: {value!r} is not a GCE label value; {rule}")
    return problems


def _hetzner_problems(m: Machine, host: HetznerHost) -> list[str]:
    problems = _labels_problems(host.labels)
    problems += open_port_problems(host.open_ports)
    if host.location not in hetzner.LOCATIONS:
        problems.append(
            f"host.location: {host.location!r} is not a Hetzner location; choose one of {', '.join(hetzner.LOCATIONS)}"
        )
    if hetzner.server_type(host.server_type) is None:
        problems.append(
            f"host.server_type: {host.server_type!r} is not a Hetzner server type; "
            f"choose one of {', '.join(sorted(hetzner.SERVER_TYPES))}"
        )
    elif host.location in hetzner.LOCATIONS and host.location not in hetzner.locations_of(host.server_type):
        problems.append(
            f"host.location: server type {host.server_type} is not sold in {host.location}; "
            f"choose one of {', '.join(hetzner.locations_of(host.server_type))}"
        )
    if not host.image:
        problems.append("host.image: give the bootstrap image, e.g. debian-12")
    return problems


def _gcp_problems(m: Machine, host: GcpHost) -> list[str]:
    problems = _gcp_labels_problems(host.labels)
    problems += open_port_problems(host.open_ports)
    if not GCE_NAME.match(m.name):
        problems.append(f"name: {m.name!r} cannot name a GCE instance, which must start with a letter")
    if not gcp.zone_exists(host.zone):
        problems.append(f"host.zone: {host.zone!r} is not a Compute Engine zone (e.g. us-central1-b)")
    found = gcp.machine_type(host.machine_type)
    if found is None:
        problems.append(
            f"host.machine_type: {host.machine_type!r} is not a Compute Engine machine type; "
            f"use <family>-<standard|highmem|highcpu>-<vcpus> with family one of {', '.join(gcp.FAMILIES)}"
        )
    if host.boot_disk_gb < GCE_BOOT_DISK_GB[0]:
        problems.append(f"host.boot_disk_gb: {host.boot_disk_gb} GB is too small; NixOS needs at least 10")
    elif host.boot_disk_gb > GCE_BOOT_DISK_GB[1]:
        problems.append(
            f"host.boot_disk_gb: {host.boot_disk_gb} GB is more than a Compute Engine disk holds (65536 GB)"
        )
    if host.gpu_count < 0:
        problems.append("host.gpu_count: must not be negative")
    if host.gpu_type is None:
        if host.gpu_count:
            problems.append("host.gpu_count: set gpu_type too, e.g. nvidia-tesla-t4")
        return problems
    if host.gpu_type not in gcp.GPU_COUNTS:
        problems.append(
            f"host.gpu_type: {host.gpu_type!r} is not an attachable GPU; choose one of {', '.join(gcp.GPU_COUNTS)}"
        )
    elif found is not None:
        family = found[1]
        if family is None or host.gpu_type not in family.gpus:
            takers = sorted(f.name for f in gcp.FAMILIES.values() if host.gpu_type in f.gpus)
            problems.append(
                f"host.gpu_type: machine type {host.machine_type} cannot take a GPU ({host.gpu_type} "
                f"attaches to {', '.join(takers)} machine types); choose e.g. n1-standard-8"
            )
        elif host.gpu_count not in gcp.GPU_COUNTS[host.gpu_type]:
            counts = ", ".join(map(str, gcp.GPU_COUNTS[host.gpu_type]))
            problems.append(f"host.gpu_count: {host.gpu_count} {host.gpu_type} cannot be attached; use {counts}")
    return problems
