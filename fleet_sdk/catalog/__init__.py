"""What the clouds offer: server types, machine families, locations and zones.

Pure data used by spec validation (boot mode, architecture, disk size feed the disk-layout checks).
A type missing here is refused with the list of known ones; add it to the table when a cloud adds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BootMode = Literal["bios", "uefi"]
Architecture = Literal["x86_64", "aarch64"]


@dataclass(frozen=True)
class ServerShape:
    """What a server type or machine type means for the machine installed on it."""

    name: str
    architecture: Architecture
    boot: BootMode
    vcpus: int
    memory_gb: float
    disk_gb: int | None  # None: the disk size is chosen per host (GCP boot disks)

    @property
    def system(self) -> str:
        """The Nix system string of NixOS on this shape."""
        return f"{self.architecture}-linux"
