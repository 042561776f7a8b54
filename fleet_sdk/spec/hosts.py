"""Where a machine runs: a Hetzner Cloud server or a Google Compute Engine instance.

These are plain typed records; whether the server type, location or zone exists is checked by
`Machine`, so that every message can name the machine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class HetznerHost(BaseModel):
    """A Hetzner Cloud server, booted from a bootstrap image that nixos-anywhere replaces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["hetzner"] = "hetzner"
    server_type: str
    location: str
    image: str = "debian-12"
    labels: dict[str, str] = Field(default_factory=dict)
    protect: bool = False

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
    boot_disk_gb: int = 100
    gpu_type: str | None = None
    gpu_count: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    protect: bool = False

    @property
    def summary(self) -> str:
        gpu = f" +{self.gpu_count}x {self.gpu_type}" if self.gpu_type else ""
        return f"gcp {self.machine_type} {self.zone}{gpu}"

    @property
    def region(self) -> str:
        return self.zone.rpartition("-")[0]


Host = HetznerHost | GcpHost
