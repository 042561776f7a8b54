"""Checks of what NixOS mounts and boots from: one filesystem per mountpoint, something at /, and the
boot partition the host's firmware needs (reference/disko.md §5, §6).
"""

from __future__ import annotations

from typing import Any

from fleet_sdk.errors import Problem
from fleet_sdk.spec.disks.layout import BootMode, DiskLayout
from fleet_sdk.spec.disks.model import (
    BcachefsFilesystem,
    Btrfs,
    BtrfsSubvolume,
    Disk,
    Filesystem,
    GptPartition,
    Nodev,
    ZfsFs,
    Zpool,
)


def mounts(layout: DiskLayout, nodes: list[tuple[str, Any]] | None = None) -> list[tuple[str, str]]:
    """Every (mountpoint, node path) the layout gives NixOS's fileSystems (disko module.nix)."""
    out = []
    for path, node in nodes if nodes is not None else layout.walk():
        mp = None
        if isinstance(node, Filesystem | Btrfs | BtrfsSubvolume | BcachefsFilesystem):
            mp = node.mountpoint
        elif isinstance(node, Nodev):
            mp = node.mountpoint or path.split(".", 1)[1]
        elif isinstance(node, ZfsFs):
            off = node.options.get("mountpoint") == "none" or node.options.get("canmount") == "off"
            mp = None if off else node.mountpoint
        elif isinstance(node, Zpool):
            mp = None if node.rootFsOptions.get("canmount") == "off" else node.mountpoint
        if mp:
            out.append((mp, path))
    return out


def mount_problems(layout: DiskLayout, nodes: list[tuple[str, Any]]) -> list[Problem]:
    problems = []
    seen: dict[str, str] = {}
    all_mounts = mounts(layout, nodes)
    for mp, path in all_mounts:
        if mp in seen:
            problems.append(
                Problem(
                    path,
                    f"mountpoint {mp} is also mounted by {seen[mp]}; NixOS refuses conflicting fileSystems definitions",
                )
            )
        seen.setdefault(mp, path)
    if layout.disk and "/" not in seen:
        pools = ", ".join(layout.zpool)
        hint = (
            f'; pool {pools} has no dataset mounted at / (add e.g. datasets."root/nixos" with mountpoint /)'
            if pools
            else ""
        )
        problems.append(Problem("disko.devices", f"nothing is mounted at /{hint}"))
    return problems


def boot_problems(nodes: list[tuple[str, Any]], boot: BootMode) -> list[Problem]:
    partitions = [(p, n) for p, n in nodes if isinstance(n, GptPartition)]
    disks = [p for p, n in nodes if isinstance(n, Disk)]
    where = disks[0] if disks else "disk"
    if boot == "bios":
        if not any(n.type == "EF02" for _, n in partitions):
            return [
                Problem(
                    where,
                    "this host boots legacy BIOS: GRUB on GPT needs a BIOS boot partition "
                    '(size "1M", type "EF02", no content)',
                )
            ]
        return []
    esps = [(p, n) for p, n in partitions if n.type and n.type.upper() == "EF00"]
    mounted = [
        p
        for p, n in esps
        if isinstance(n.content, Filesystem)
        and n.content.format == "vfat"
        and n.content.mountpoint in ("/boot", "/boot/efi")
    ]
    if not mounted:
        at = esps[0][0] if esps else where
        return [
            Problem(
                at,
                'this host boots UEFI: it needs an EFI system partition (type "EF00", vfat, '
                "mounted at /boot or /boot/efi)",
            )
        ]
    return []


__all__ = ["boot_problems", "mount_problems", "mounts"]
