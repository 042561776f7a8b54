"""Disk layouts as typed objects: read from disko JSON or Nix, checked against their host, rendered
as the JSON the flake reads (machines/<m>/disko.json), with the partition table disko would create.

The model, its checks and the partition arithmetic are the spec's (fleet_sdk.spec.disks, pure); this
engine reads layouts from Nix files, offers the stock layouts and checks the written disko.json files.

    layout = DiskLayout.from_nix_file(Path("machines/web/disko.nix"))
    for problem in layout.check(boot="uefi", disk_bytes=160 * 10**9): print(problem)
    layout.partition_plan("main", 160 * 10**9)
"""

from fleet_sdk.disko.layout import BootMode, DiskLayout
from fleet_sdk.disko.layouts import LuksKey, ext4_root, luks_zfs_root, zfs_root
from fleet_sdk.errors import DiskoError, PartitionPlanError, Problem
from fleet_sdk.spec.disks import PlannedPartition

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
