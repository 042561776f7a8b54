"""Disk layouts as typed objects: read from disko JSON or Nix, checked against their host, rendered
as the JSON the flake reads (machines/<m>/disko.json), with the partition table disko would create.

    layout = DiskLayout.from_nix_file(Path("machines/web/disko.nix"))
    for problem in layout.check(boot="uefi", disk_bytes=160 * 10**9): print(problem)
    layout.partition_plan("main", 160 * 10**9)
"""

from fleet_sdk.disko.layout import BootMode, DiskLayout
from fleet_sdk.disko.layouts import LuksKey, ext4_root, luks_zfs_root, zfs_root
from fleet_sdk.disko.partitions import PlannedPartition
from fleet_sdk.errors import DiskoError, PartitionPlanError, Problem

__all__ = [
    "BootMode",
    "DiskLayout",
    "DiskoError",
    "LuksKey",
    "PartitionPlanError",
    "PlannedPartition",
    "Problem",
    "ext4_root",
    "luks_zfs_root",
    "zfs_root",
]
