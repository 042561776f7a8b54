"""Disk layouts as pure typed declarations: every disko type (`model`), the whole `disko.devices`
(`layout.DiskLayout`), the checks of what disko lets through but fails at install or boot (`checks`,
`checks_gpt`, `checks_mounts`) and the partition tables sgdisk will create (`partitions`).

No I/O: reading a layout from a Nix file, the stock layouts and the machines/<m>/disko.json files
are the disko engine's (`fleet_sdk.disko`, whose `DiskLayout` is a subclass of this one).
"""

from fleet_sdk.spec.disks.layout import BootMode, DiskLayout
from fleet_sdk.spec.disks.partitions import PlannedPartition

__all__ = ["BootMode", "DiskLayout", "PlannedPartition"]
