"""Where a machine runs: a Hetzner Cloud server or a Google Compute Engine instance.

These are plain typed records; whether the server type, location or zone exists is checked by
`Machine`, so that every message can name the machine. Numbers and flags are strict: a disk of
`True` or `100.5` GB, or a `protect="no"` (which pydantic would read as False), is refused.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt


class HetznerHost(BaseModel):
    """A Hetzner Cloud server, booted from a bootstrap image that nixos-anywhere replaces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["hetzner"] = "hetzner"
    server_type: str
    location: str
    image: str = "debian-12"
    labels: dict[str, str] = Field(default_factory=dict)
    protect: StrictBool = False
    # A and AAAA records <machine>.<zone> in the Cloudflare zone named by stack config fleet:cloudflareZone
    dns: StrictBool = False
    # inbound ports beyond the fleet's shared ssh/zerotier/icmp rules: "tcp/80", "udp/51820", "tcp/8000-8100"
    open_ports: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        return f"hetzner {self.server_type} {self.location}"


class GcpHost(BaseModel):
    """A Compute Engine instance with a public IPv4 address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["gcp"] = "gcp"
    machine_type: str
    zone: str
    image: str = "debian-cloud/debian-12"
    boot_disk_gb: StrictInt = 100
    gpu_type: str | None = None
    gpu_count: StrictInt = 0
    labels: dict[str, str] = Field(default_factory=dict)
    protect: StrictBool = False
    open_ports: tuple[str, ...] = ()  # as HetznerHost.open_ports

    @property
    def summary(self) -> str:
        gpu = f" +{self.gpu_count}x {self.gpu_type}" if self.gpu_type else ""
        return f"gcp {self.machine_type} {self.zone}{gpu}"

    @property
    def region(self) -> str:
        return self.zone.rpartition("-")[0]


Host = HetznerHost | GcpHost

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
