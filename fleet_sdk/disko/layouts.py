"""Ready layouts for the common cases, as plain disko data validated by the model.

ZFS root: pool zroot with compression=lz4 and com.sun:auto-snapshot=true, datasets root (not
mounted), root/nixos at /, root/home at /home, root/nix at /nix. BIOS hosts get a 1M EF02 partition
for GRUB and a 1G ext4 /boot (GRUB reads it more reliably than ZFS); UEFI hosts a 1G vfat ESP at /boot.
"""

from __future__ import annotations

from typing import Any

from fleet_sdk.disko.layout import BootMode, DiskLayout

PARTITIONING_SECRETS = "/run/partitioning-secrets"


def _boot_partitions(boot: BootMode) -> dict[str, Any]:
    if boot == "bios":
        return {
            "bios": {"size": "1M", "type": "EF02"},
            "boot": {
                "size": "1G",
                "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/boot"},
            },
        }
    return {
        "ESP": {
            "size": "1G",
            "type": "EF00",
            "content": {
                "type": "filesystem",
                "format": "vfat",
                "mountpoint": "/boot",
                "mountOptions": ["umask=0077"],
            },
        }
    }


def _zroot(pool: str) -> dict[str, Any]:
    return {
        "type": "zpool",
        "rootFsOptions": {"compression": "lz4", "com.sun:auto-snapshot": "true"},
        "datasets": {
            "root": {"type": "zfs_fs", "options": {"mountpoint": "none"}},
            "root/nixos": {"type": "zfs_fs", "mountpoint": "/"},
            "root/home": {"type": "zfs_fs", "mountpoint": "/home"},
            "root/nix": {"type": "zfs_fs", "mountpoint": "/nix"},
        },
    }


def _disk(device: str, partitions: dict[str, Any]) -> dict[str, Any]:
    return {"type": "disk", "device": device, "content": {"type": "gpt", "partitions": partitions}}


def zfs_root(device: str = "/dev/sda", boot: BootMode = "uefi", pool: str = "zroot", disk: str = "main") -> DiskLayout:
    partitions = _boot_partitions(boot) | {"zfs": {"size": "100%", "content": {"type": "zfs", "pool": pool}}}
    return DiskLayout.from_disko({"disk": {disk: _disk(device, partitions)}, "zpool": {pool: _zroot(pool)}})


def ext4_root(device: str = "/dev/sda", boot: BootMode = "uefi", disk: str = "main") -> DiskLayout:
    """ext4 at / (with /boot on it: GRUB reads ext4, so BIOS hosts need only the EF02 partition)."""
    first = {"bios": {"size": "1M", "type": "EF02"}} if boot == "bios" else _boot_partitions(boot)
    partitions = first | {
        "root": {"size": "100%", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"}}
    }
    return DiskLayout.from_disko({"disk": {disk: _disk(device, partitions)}})


def luks_zfs_root(
    rel_dir: str,
    file: str = "key",
    device: str = "/dev/sda",
    boot: BootMode = "uefi",
    pool: str = "zroot",
    disk: str = "main",
) -> DiskLayout:
    """ZFS inside LUKS. The key is a partitioning secret of the vars store (`<rel_dir>/<file>`, e.g.
    `per-machine/web/luks/key`), uploaded by the installer to /run/partitioning-secrets before disko runs."""
    key_path = f"{PARTITIONING_SECRETS}/{rel_dir.strip('/')}/{file}"
    partitions = _boot_partitions(boot) | {
        "zfs": {
            "size": "100%",
            "content": {
                "type": "luks",
                "name": "crypted",
                "passwordFile": key_path,
                "settings": {"allowDiscards": True},
                "content": {"type": "zfs", "pool": pool},
            },
        }
    }
    return DiskLayout.from_disko({"disk": {disk: _disk(device, partitions)}, "zpool": {pool: _zroot(pool)}})
