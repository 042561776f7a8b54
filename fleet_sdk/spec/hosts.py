"""Where a machine runs: a `Host` of some kind, one subclass per cloud (Hetzner Cloud and Google
Compute Engine are built in; a cloud plug-in brings its own, see fleet_sdk.graph.clouds).

A host checks its own fields against its cloud's catalog (`problems`) and tells the machine what it
is installed on (`shape`, `disk_bytes`); `Machine` prefixes every problem with the machine's name and
never names a concrete cloud. Numbers and flags are strict: a disk of `True` or `100.5` GB, or a
`protect="no"` (which pydantic would read as False), is refused.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator
from typing_extensions import override

from fleet_sdk.catalog import ServerShape, gcp, hetzner
from fleet_sdk.spec.names import GCE_NAME, LABEL_KEY, LABEL_VALUE

GCE_BOOT_DISK_GB = (10, 65536)  # NixOS needs 10 GB; a persistent disk holds at most 64 TiB


class Host(BaseModel):
    """A server in some cloud. Subclasses fix `kind` (a Literal with that default), which names the
    cloud plug-in that provisions them and the model a host given as a dict is read with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    labels: dict[str, str] = Field(default_factory=dict)
    protect: StrictBool = False
    # inbound ports beyond the fleet's shared ssh/zerotier/icmp rules: "tcp/80", "udp/51820", "tcp/8000-8100"
    open_ports: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One line for plans: the cloud and what is rented there."""
        return self.kind

    @property
    def dns_records(self) -> bool:
        """Whether the machine gets A and AAAA records in the stack's DNS zone (fleet:cloudflareZone)."""
        return False

    @property
    def import_id(self) -> str | None:
        """The cloud's id of an existing server this host adopts (Pulumi's import id); None: the
        graph creates the server."""
        return None

    def problems(self, machine: str) -> list[str]:
        """What is wrong with this host for `machine`, each starting with the field (host.…)."""
        return self.label_problems() + open_port_problems(self.open_ports)

    def label_problems(self) -> list[str]:
        return _labels_problems(self.labels)

    def shape(self) -> ServerShape | None:
        """The server type's shape (architecture, boot mode, disk); None when the catalog does not know it."""
        return None

    def disk_bytes(self) -> int | None:
        """Size of the disk the machine is installed on, when the host tells."""
        shape = self.shape()
        return shape.disk_gb * 10**9 if shape and shape.disk_gb else None


class HetznerHost(Host):
    """A Hetzner Cloud server, booted from a bootstrap image that nixos-anywhere replaces."""

    kind: Literal["hetzner"] = "hetzner"
    server_type: str
    location: str
    image: str = "debian-12"
    # A and AAAA records <machine>.<zone> in the Cloudflare zone named by stack config fleet:cloudflareZone
    dns: StrictBool = False
    server_id: int | str | None = None
    """An existing server to adopt rather than create: its id, a positive integer (the ID column of
    `hcloud server list`); a string of digits is read as that number. The first `pulumi up` imports
    the server: its name must be the machine's, its type and location the host's."""

    @field_validator("server_id", mode="before")
    @classmethod
    def _server_id_number(cls, value: Any) -> Any:
        # digits are the number; anything else but an int is kept as text for problems() to refuse
        # with the machine's name (pydantic's own message would not name it)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        text = str(value)
        return int(text) if _DIGITS.match(text) else text

    @property
    @override
    def summary(self) -> str:
        adopted = f" (adopts server {self.server_id})" if self.server_id is not None else ""
        return f"hetzner {self.server_type} {self.location}{adopted}"

    @property
    @override
    def dns_records(self) -> bool:
        return self.dns

    @property
    @override
    def import_id(self) -> str | None:
        return None if self.server_id is None else str(self.server_id)

    @override
    def shape(self) -> ServerShape | None:
        return hetzner.server_type(self.server_type)

    @override
    def problems(self, machine: str) -> list[str]:
        problems = super().problems(machine)
        if self.location not in hetzner.LOCATIONS:
            problems.append(
                f"host.location: {self.location!r} is not a Hetzner location; "
                f"choose one of {', '.join(hetzner.LOCATIONS)}"
            )
        if hetzner.server_type(self.server_type) is None:
            problems.append(
                f"host.server_type: {self.server_type!r} is not a Hetzner server type; "
                f"choose one of {', '.join(sorted(hetzner.SERVER_TYPES))}"
            )
        elif self.location in hetzner.LOCATIONS and self.location not in hetzner.locations_of(self.server_type):
            problems.append(
                f"host.location: server type {self.server_type} is not sold in {self.location}; "
                f"choose one of {', '.join(hetzner.locations_of(self.server_type))}"
            )
        if not self.image:
            problems.append("host.image: give the bootstrap image, e.g. debian-12")
        return problems + _server_id_problems(self.server_id)


class GcpHost(Host):
    """A Compute Engine instance with a public IPv4 address."""

    kind: Literal["gcp"] = "gcp"
    machine_type: str
    zone: str
    image: str = "debian-cloud/debian-12"
    boot_disk_gb: StrictInt = 100
    gpu_type: str | None = None
    gpu_count: StrictInt = 0
    instance_id: str | None = None
    """An existing instance to adopt rather than create, as Pulumi imports it:
    `projects/<project>/zones/<zone>/instances/<name>`; `<project>/<zone>/<name>` and the instance's
    self link (`gcloud compute instances describe <name> --format='value(selfLink)'`) are read as
    that. The zone must be the host's and the name the machine's; GCE's numeric instance id is
    refused, since Pulumi cannot import by it. The first `pulumi up` imports the instance."""

    @field_validator("instance_id", mode="before")
    @classmethod
    def _instance_path(cls, value: Any) -> Any:
        # the self link and the short form as the path Pulumi imports; anything else is left for
        # problems() to refuse with the machine's name
        if value is None:
            return None
        text = str(value)
        for prefix in GCE_LINK_PREFIXES:
            if text.startswith(prefix):
                return text[len(prefix) :]
        parts = text.split("/")
        if len(parts) == 3 and parts[0] != "projects" and all(parts):
            return f"projects/{parts[0]}/zones/{parts[1]}/instances/{parts[2]}"
        return text

    @property
    @override
    def summary(self) -> str:
        gpu = f" +{self.gpu_count}x {self.gpu_type}" if self.gpu_type else ""
        adopted = f" (adopts {self.instance_id})" if self.instance_id is not None else ""
        return f"gcp {self.machine_type} {self.zone}{gpu}{adopted}"

    @property
    @override
    def import_id(self) -> str | None:
        return self.instance_id

    @property
    def region(self) -> str:
        return self.zone.rpartition("-")[0]

    @override
    def shape(self) -> ServerShape | None:
        found = gcp.machine_type(self.machine_type)
        return found[0] if found else None

    @override
    def disk_bytes(self) -> int | None:
        return self.boot_disk_gb * 10**9  # the boot disk is sized per instance, not by the machine type

    @override
    def label_problems(self) -> list[str]:
        return _gcp_labels_problems(self.labels)

    def instance_id_problems(self, machine: str) -> list[str]:
        if self.instance_id is None:
            return []
        found = _GCE_INSTANCE_PATH.match(self.instance_id)
        if found is None:
            if _DIGITS.match(self.instance_id):
                return [
                    f"host.instance_id: {self.instance_id!r} is GCE's numeric instance id, which Pulumi cannot "
                    "import; give projects/<project>/zones/<zone>/instances/<name> (gcloud compute instances "
                    f"describe {machine} --zone {self.zone} --format='value(selfLink)')"
                ]
            return [
                f"host.instance_id: {self.instance_id!r} is not projects/<project>/zones/<zone>/instances/<name> "
                "(or <project>/<zone>/<name>, or the instance's self link)"
            ]
        project, zone, name = found.groups()
        problems = []
        if not _GCP_PROJECT.match(project):
            problems.append(f"host.instance_id: {project!r} is not a Google Cloud project id")
        if zone != self.zone:
            problems.append(
                f"host.instance_id: the instance is in zone {zone}, but host.zone is {self.zone}; "
                "an instance cannot move zones: make them agree"
            )
        if name != machine:
            problems.append(
                f"host.instance_id: the instance is named {name!r}, but the machine {machine!r}; the graph "
                "names the instance after its machine, and renaming an instance replaces it: name the "
                "machine after the instance"
            )
        return problems

    @override
    def problems(self, machine: str) -> list[str]:
        problems = super().problems(machine)
        if not GCE_NAME.match(machine):
            problems.append(f"name: {machine!r} cannot name a GCE instance, which must start with a letter")
        if not gcp.zone_exists(self.zone):
            problems.append(f"host.zone: {self.zone!r} is not a Compute Engine zone (e.g. us-central1-b)")
        found = gcp.machine_type(self.machine_type)
        if found is None:
            problems.append(
                f"host.machine_type: {self.machine_type!r} is not a Compute Engine machine type; "
                f"use <family>-<standard|highmem|highcpu>-<vcpus> with family one of {', '.join(gcp.FAMILIES)}"
            )
        if self.boot_disk_gb < GCE_BOOT_DISK_GB[0]:
            problems.append(f"host.boot_disk_gb: {self.boot_disk_gb} GB is too small; NixOS needs at least 10")
        elif self.boot_disk_gb > GCE_BOOT_DISK_GB[1]:
            problems.append(
                f"host.boot_disk_gb: {self.boot_disk_gb} GB is more than a Compute Engine disk holds (65536 GB)"
            )
        if self.gpu_count < 0:
            problems.append("host.gpu_count: must not be negative")
        problems += self.instance_id_problems(machine)
        if self.gpu_type is None:
            if self.gpu_count:
                problems.append("host.gpu_count: set gpu_type too, e.g. nvidia-tesla-t4")
            return problems
        if self.gpu_type not in gcp.GPU_COUNTS:
            problems.append(
                f"host.gpu_type: {self.gpu_type!r} is not an attachable GPU; choose one of {', '.join(gcp.GPU_COUNTS)}"
            )
        elif found is not None:
            family = found[1]
            if family is None or self.gpu_type not in family.gpus:
                takers = sorted(f.name for f in gcp.FAMILIES.values() if self.gpu_type in f.gpus)
                problems.append(
                    f"host.gpu_type: machine type {self.machine_type} cannot take a GPU ({self.gpu_type} "
                    f"attaches to {', '.join(takers)} machine types); choose e.g. n1-standard-8"
                )
            elif self.gpu_count not in gcp.GPU_COUNTS[self.gpu_type]:
                counts = ", ".join(map(str, gcp.GPU_COUNTS[self.gpu_type]))
                problems.append(f"host.gpu_count: {self.gpu_count} {self.gpu_type} cannot be attached; use {counts}")
        return problems


# kind -> the model a host given as a dict is read with (Machine.host); built-ins here, plug-ins
# through register_host_kind (fleet_sdk.graph.clouds.register calls it)
_KINDS: dict[str, type[Host]] = {}


def register_host_kind(model: type[Host]) -> None:
    """Read hosts given as a dict with `kind` set to the model's default kind with `model`."""
    kind = model.model_fields["kind"].default
    if not isinstance(kind, str):
        raise TypeError(f"{model.__name__}.kind needs a default (kind: Literal['name'] = 'name')")
    _KINDS[kind] = model


def host_from_dict(value: Any) -> Any:
    """A dict naming a known kind as that kind's model; anything else as it is (pydantic checks it)."""
    if not isinstance(value, dict):
        return value
    kind = value.get("kind")
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValueError(f"host kind {kind!r} is unknown; the known kinds are {', '.join(sorted(_KINDS))}")
    return model.model_validate(value)


register_host_kind(HetznerHost)
register_host_kind(GcpHost)

_DIGITS = re.compile(r"^[0-9]+$")
HETZNER_ID_MAX = 2**63 - 1  # ids are int64
# what the self link of a GCE resource starts with, before projects/…
GCE_LINK_PREFIXES = ("https://www.googleapis.com/compute/v1/", "https://compute.googleapis.com/compute/v1/")
_GCE_INSTANCE_PATH = re.compile(r"^projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$")
# 6-30 lower-case letters, digits and '-', starting with a letter; optionally domain-scoped (example.com:id)
_GCP_PROJECT = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def _server_id_problems(server_id: int | str | None) -> list[str]:
    rule = "Hetzner server ids are positive integers (the ID column of `hcloud server list`)"
    if isinstance(server_id, str):
        return [f"host.server_id: {server_id!r} is not a number: {rule}"]
    if server_id is not None and not 0 < server_id <= HETZNER_ID_MAX:
        return [f"host.server_id: {server_id} is not a server id: {rule}"]
    return []


_PORT_ENTRY = re.compile(r"^(tcp|udp)/([0-9]{1,5})(?:-([0-9]{1,5}))?$")


def parse_open_port(entry: str) -> tuple[str, int, int] | None:
    """Parse "tcp/80" -> ("tcp", 80, 80), "udp/60000-61000" -> ("udp", 60000, 61000); None if malformed."""
    m = _PORT_ENTRY.match(entry)
    if not m:
        return None
    first = int(m.group(2))
    last = int(m.group(3)) if m.group(3) else first
    return (m.group(1), first, last) if 1 <= first <= last <= 65535 else None


def port_ranges(open_ports: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Valid open_ports as (protocol, "443" or "60000-61000", entry), the form both clouds take."""
    out = []
    for entry in open_ports:
        parsed = parse_open_port(entry)
        assert parsed is not None  # Machine refused malformed entries
        protocol, first, last = parsed
        out.append((protocol, str(first) if first == last else f"{first}-{last}", entry))
    return out


def open_port_problems(open_ports: tuple[str, ...]) -> list[str]:
    """Each entry must be tcp|udp/<port> or tcp|udp/<first>-<last>, ports 1-65535, listed once."""
    problems = [
        f"host.open_ports: {entry!r} is not <tcp|udp>/<port> or <tcp|udp>/<first>-<last> "
        "with ports 1-65535, e.g. tcp/443 or udp/60000-61000"
        for entry in open_ports
        if parse_open_port(entry) is None
    ]
    problems += [f"host.open_ports: {entry!r} is listed twice" for entry, n in Counter(open_ports).items() if n > 1]
    return problems


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
