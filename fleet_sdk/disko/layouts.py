"""Ready layouts for the common cases, as plain disko data validated by the model.

ZFS root: pool zroot with compression=lz4 and com.sun:auto-snapshot=true, datasets root (not
mounted), root/nixos at /, root/home at /home, root/nix at /nix. BIOS hosts get a 1M EF02 partition
for GRUB and a 1G ext4 /boot (GRUB reads it more reliably than ZFS); UEFI hosts a 1G vfat ESP at /boot.

The keyword options of `zfs_root` reproduce a layout a machine was already installed with: disko
derives each GPT label from the disk and partition names (`disk-<disk>-<partition>`) and mounts by
label, so an adopted machine needs its own names, not ours.

    zfs_root("/dev/sda", boot="bios", bios_names=("boot", "grub"), zfs_mountpoints=True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet_sdk.disko.layout import BootMode, DiskLayout
from fleet_sdk.errors import DiskoError, Problem

PARTITIONING_SECRETS = "/run/partitioning-secrets"
ROOT_DATASETS = {"root/nixos": "/", "root/home": "/home", "root/nix": "/nix"}


@dataclass(frozen=True)
class LuksKey:
    """A LUKS container around the pool, keyed by a partitioning secret of the vars store
    (`<rel_dir>/<file>`, e.g. `per-machine/web/luks/key`), which the installer uploads to
    /run/partitioning-secrets before disko runs.

    `add_key_slot` also lists the key in additionalKeyFiles (a second keyslot with the same secret);
    `enroll_fido2`/`enroll_recovery` are written only when given, so disko's defaults apply otherwise."""

    rel_dir: str
    file: str = "key"
    name: str = "crypted"
    settings: Mapping[str, Any] = field(default_factory=lambda: {"allowDiscards": True})
    add_key_slot: bool = False
    enroll_fido2: bool | None = None
    enroll_recovery: bool | None = None

    @property
    def path(self) -> str:
        return f"{PARTITIONING_SECRETS}/{self.rel_dir.strip('/')}/{self.file}"

    def content(self, inner: dict[str, Any]) -> dict[str, Any]:
        node: dict[str, Any] = {
            "type": "luks",
            "name": self.name,
            "passwordFile": self.path,
            "settings": dict(self.settings),
            "content": inner,
        }
        if self.add_key_slot:
            node["additionalKeyFiles"] = [self.path]
        if self.enroll_fido2 is not None:
            node["enrollFido2"] = self.enroll_fido2
        if self.enroll_recovery is not None:
            node["enrollRecovery"] = self.enroll_recovery
        return node


def _boot_partitions(
    boot: BootMode,
    bios_names: tuple[str, str] = ("bios", "boot"),
    esp_mount_options: Sequence[str] | None = ("umask=0077",),
) -> dict[str, Any]:
    if boot == "bios":
        grub, boot_fs = bios_names
        return {
            grub: {"size": "1M", "type": "EF02"},
            boot_fs: {
                "size": "1G",
                "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/boot"},
            },
        }
    esp: dict[str, Any] = {"type": "filesystem", "format": "vfat", "mountpoint": "/boot"}
    if esp_mount_options is not None:  # None leaves disko's default (["defaults"]) unwritten
        esp["mountOptions"] = list(esp_mount_options)
    return {"ESP": {"size": "1G", "type": "EF00", "content": esp}}


def _dataset(mountpoint: str | None, options: Mapping[str, str]) -> dict[str, Any]:
    # only what is set: an empty `options` would still differ from an absent one in to_disko()
    node: dict[str, Any] = {"type": "zfs_fs"}
    if options:
        node["options"] = dict(options)
    if mountpoint is not None:
        node["mountpoint"] = mountpoint
    return node


def _zroot(
    pool: str,
    zfs_mountpoints: bool = False,
    datasets: Mapping[str, str] | None = None,
    dataset_options: Mapping[str, Mapping[str, str]] | None = None,
    pool_options: Mapping[str, str] | None = None,
    root_fs_options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    extra = dict(datasets or {})
    tuning = dict(dataset_options or {})
    mounted = ROOT_DATASETS | extra
    problems = [
        Problem(f"zpool.{pool}.datasets.{name}", "is a stock dataset already; tune it with dataset_options")
        for name in sorted(set(extra) & (set(ROOT_DATASETS) | {"root"}))
    ] + [
        Problem(f"zpool.{pool}.datasets.{name}", f"dataset_options names no dataset; use one of {sorted(mounted)}")
        for name in sorted(set(tuning) - set(mounted) - {"root"})
    ]
    if problems:
        raise DiskoError(problems)
    out: dict[str, Any] = {
        "type": "zpool",
        "rootFsOptions": {"compression": "lz4", "com.sun:auto-snapshot": "true"} | dict(root_fs_options or {}),
        "datasets": {"root": _dataset(None, {"mountpoint": "none"} | dict(tuning.get("root", {})))},
    }
    if pool_options:
        out["options"] = dict(pool_options)
    for name, mountpoint in mounted.items():
        # disko mounts by `mountpoint`; the ZFS property is an option of its own that a pool may carry too
        own = {"mountpoint": mountpoint} if zfs_mountpoints else {}
        out["datasets"][name] = _dataset(mountpoint, own | dict(tuning.get(name, {})))
    return out


def _disk(device: str, partitions: dict[str, Any]) -> dict[str, Any]:
    return {"type": "disk", "device": device, "content": {"type": "gpt", "partitions": partitions}}


def zfs_root(
    device: str = "/dev/sda",
    boot: BootMode = "uefi",
    pool: str = "zroot",
    disk: str = "main",
    *,
    bios_names: tuple[str, str] = ("bios", "boot"),
    esp_mount_options: Sequence[str] | None = ("umask=0077",),
    zfs_mountpoints: bool = False,
    datasets: Mapping[str, str] | None = None,
    dataset_options: Mapping[str, Mapping[str, str]] | None = None,
    pool_options: Mapping[str, str] | None = None,
    root_fs_options: Mapping[str, str] | None = None,
    luks: LuksKey | None = None,
) -> DiskLayout:
    """One disk: the boot partition(s), then `zfs` filling the rest, holding pool `pool`.

    - `bios_names`: the names of the EF02 (GRUB core) and ext4 /boot partitions on BIOS hosts;
    - `esp_mount_options`: the ESP's mountOptions on UEFI hosts (None: not written);
    - `zfs_mountpoints`: also set each mounted dataset's ZFS `mountpoint` property;
    - `datasets`: more datasets beside the stock ones, name (below the pool) → mountpoint;
    - `dataset_options`: ZFS properties added to a dataset, stock or extra, e.g. quota;
    - `pool_options`, `root_fs_options`: `zpool create -o` / `-O` properties (the latter over the stock ones);
    - `luks`: put the pool inside LUKS (see `LuksKey`).
    """
    inner: dict[str, Any] = {"type": "zfs", "pool": pool}
    partitions = _boot_partitions(boot, bios_names, esp_mount_options) | {
        "zfs": {"size": "100%", "content": luks.content(inner) if luks else inner}
    }
    zpool = _zroot(pool, zfs_mountpoints, datasets, dataset_options, pool_options, root_fs_options)
    return DiskLayout.from_disko({"disk": {disk: _disk(device, partitions)}, "zpool": {pool: zpool}})


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
    return zfs_root(device, boot, pool, disk, luks=LuksKey(rel_dir, file))
