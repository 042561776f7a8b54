"""What disko lets through but fails at install or boot (reference/disko.md §5, §6, §11).

Each problem names the node path and says what to do. `check_layout` is pure: no disks are touched.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from fleet_sdk.disko.layout import BootMode, DiskLayout, Problem
from fleet_sdk.disko.model import (
    Bcachefs,
    BcachefsFilesystem,
    Btrfs,
    BtrfsSubvolume,
    Disk,
    Filesystem,
    Gpt,
    GptPartition,
    Luks,
    LvmPv,
    Mdraid,
    Nodev,
    Swap,
    Table,
    TopologyMode,
    Vdev,
    Zfs,
    ZfsFs,
    ZfsVolume,
    Zpool,
)
from fleet_sdk.disko.partitions import PartitionFailedError, default_label, plan_gpt, resolve

# sgdisk type codes (`sgdisk -L`) that layouts use; an unknown code fails inside sgdisk at format time
KNOWN_TYPE_CODES = {
    "0700",
    "0C01",
    "2700",
    "3000",
    "7501",
    "8200",
    "8300",
    "8301",
    "8302",
    "8303",
    "8304",
    "8305",
    "8306",
    "8307",
    "8308",
    "8309",
    "830A",
    "8310",
    "8311",
    "8312",
    "8313",
    "8314",
    "8315",
    "8316",
    "8317",
    "8318",
    "8319",
    "831A",
    "831B",
    "831C",
    "831D",
    "831E",
    "8400",
    "8E00",
    "A500",
    "A501",
    "A502",
    "A503",
    "A504",
    "A505",
    "A506",
    "A580",
    "A581",
    "A582",
    "A583",
    "A584",
    "A585",
    "AF00",
    "BE00",
    "BF00",
    "BF01",
    "BF02",
    "BF03",
    "BF04",
    "BF05",
    "BF06",
    "BF07",
    "BF08",
    "EA00",
    "EB00",
    "EF00",
    "EF01",
    "EF02",
    "FD00",
}
MIN_MEMBERS = {"mirror": 2, "raidz": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}
_ZERO_WITH_UNIT = re.compile(r"^0+[KMGTP]$")


def check_layout(layout: DiskLayout, boot: BootMode | None = None, disk_bytes: int | None = None) -> list[Problem]:
    problems: list[Problem] = []
    nodes = list(layout.walk())
    if not layout.disk:
        problems.append(Problem("disk", "no disks are defined; disko has nothing to partition (add disk.<name>)"))
    for path, node in nodes:
        if isinstance(node, Gpt):
            problems += _gpt_problems(path, node)
        elif isinstance(node, Table):
            problems.append(Problem(path, "the legacy `table` type is deprecated by disko; use type = gpt"))
    problems += _label_problems(layout)
    problems += _reference_problems(layout, nodes)
    problems += _zpool_problems(layout, nodes)
    problems += _lvm_problems(layout)
    problems += _misc_problems(nodes)
    problems += _mount_problems(layout, nodes)
    if boot is not None:
        problems += _boot_problems(nodes, boot)
    if disk_bytes is not None:
        problems += _fit_problems(layout, disk_bytes)
    return problems


def _gpt_problems(path: str, gpt: Gpt) -> list[Problem]:
    problems = []
    full = sorted((k for k, p in gpt.partitions.items() if p.size == "100%"), key=lambda k: k.encode())
    for extra in full[1:]:
        problems.append(
            Problem(
                f"{path}.partitions.{extra}",
                f"a second size = 100% partition (after {full[0]!r}) gets only "
                "the leftovers of the disk; give all but one a fixed size",
            )
        )
    names: dict[str, str] = {}
    for key, p in gpt.partitions.items():
        at = f"{path}.partitions.{key}"
        name = p.name or key
        if name in names:
            problems.append(Problem(at, f"its name {name!r} is also partition {names[name]!r}'s; names must be unique"))
        names[name] = key
        if p.size == "0" and p.end is None:
            problems.append(Problem(at, 'neither size nor end is set; give size (e.g. "1G" or "100%") or end'))
        if _ZERO_WITH_UNIT.match(p.start):
            problems.append(Problem(at, f'start = "{p.start}" is sector 0, which sgdisk refuses; use "0" (next free)'))
        if p.end == "100%":
            problems.append(Problem(at, 'end = "100%" is not sgdisk syntax; use size = "100%" or end = "-0"'))
        if p.type is not None and len(p.type) == 4:
            if p.type != p.type.upper() and p.type.upper() == "EF02":
                problems.append(Problem(at, 'write the type code as "EF02": disko matches it exactly for GRUB'))
            elif p.type.upper() not in KNOWN_TYPE_CODES:
                problems.append(Problem(at, f"type code {p.type!r} is unknown to sgdisk (see `sgdisk -L`)"))
        if p.type and p.type.upper() == "EF00" and not _is_vfat(p):
            problems.append(Problem(at, "an EF00 (EFI system) partition needs a vfat filesystem"))
    # creation order (priority, then key): everything created after the first "100%" partition
    # finds the disk full, unless it is placed relative to the end
    order = resolve(gpt, "disk", "x")
    first = next((i for i, spec in enumerate(order) if spec.end == "-0" and not spec.start.startswith("-")), None)
    if first is not None:
        for spec in order[first + 1 :]:
            if not spec.end.startswith("-") and spec.key not in full[1:]:
                problems.append(
                    Problem(
                        f"{path}.partitions.{spec.key}",
                        f"it is created after {order[first].key!r}, which takes the rest of the disk; "
                        "lower its priority or give it a negative end",
                    )
                )
    return problems


def _label_problems(layout: DiskLayout) -> list[Problem]:
    """GPT labels must be unique across the machine's disks: disko and the boot find partitions by
    /dev/disk/by-partlabel/<label>, so two equal labels mean one partition is used for the other."""
    problems = []
    seen: dict[str, str] = {}
    for disk_key in sorted(layout.disk, key=lambda k: k.encode()):
        disk = layout.disk[disk_key]
        if not isinstance(disk.content, Gpt):
            continue
        for key in sorted(disk.content.partitions, key=lambda k: k.encode()):
            p = disk.content.partitions[key]
            label = p.label or default_label("disk", disk.name or disk_key, p.name or key)
            at = f"disk.{disk_key}.content.partitions.{key}"
            if label in seen:
                problems.append(
                    Problem(
                        at,
                        f"its GPT label {label!r} is also {seen[label]}'s; disko finds partitions by label, so "
                        "one would be used for the other: give them distinct labels",
                    )
                )
            else:
                seen[label] = at
    return problems


def _is_vfat(p: GptPartition) -> bool:
    return isinstance(p.content, Filesystem) and p.content.format == "vfat"


def _reference_problems(layout: DiskLayout, nodes: list[tuple[str, Any]]) -> list[Problem]:
    problems = []
    targets: dict[type[Any], tuple[str, str, dict[str, Any]]] = {
        Zfs: ("pool", "zpool", layout.zpool),
        LvmPv: ("vg", "lvm_vg", layout.lvm_vg),
        Mdraid: ("name", "mdadm", layout.mdadm),
        Bcachefs: ("filesystem", "bcachefs_filesystems", layout.bcachefs_filesystems),
    }
    members: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path, node in nodes:
        for kind, (field, collection, defined) in targets.items():
            if isinstance(node, kind):
                ref = getattr(node, field)
                names = {getattr(v, "name", None) or k for k, v in defined.items()}
                members[(collection, ref)].append(path)
                if ref not in names:
                    known = ", ".join(sorted(names)) or "none"
                    problems.append(
                        Problem(
                            path,
                            f"{field} = {ref!r} names no {collection} entry (defined: {known}); "
                            "a typo here silently creates nothing",
                        )
                    )
    for collection, defined in (
        ("zpool", layout.zpool),
        ("lvm_vg", layout.lvm_vg),
        ("mdadm", layout.mdadm),
        ("bcachefs_filesystems", layout.bcachefs_filesystems),
    ):
        for key, node in defined.items():
            if not members.get((collection, getattr(node, "name", None) or key)):
                problems.append(Problem(f"{collection}.{key}", "no device is a member of it; it cannot be created"))
    return problems


def _vdevs(mode: TopologyMode) -> list[tuple[str, Vdev]]:
    t = mode.topology
    special = t.special if isinstance(t.special, list) else [t.special] if t.special else []
    return (
        [("vdev", v) for v in t.vdev]
        + [("log", v) for v in t.log]
        + [("dedup", v) for v in t.dedup]
        + [("special", v) for v in special]
    )


def _zpool_problems(layout: DiskLayout, nodes: list[tuple[str, Any]]) -> list[Problem]:
    problems = []
    for key, pool in layout.zpool.items():
        name = pool.name or key
        at = f"zpool.{key}"
        registered = [p for p, n in nodes if isinstance(n, Zfs) and n.pool == name]
        if isinstance(pool.mode, str):
            need = MIN_MEMBERS.get(pool.mode, 1)
            if registered and len(registered) < need:
                problems.append(
                    Problem(
                        f"{at}.mode",
                        f"{pool.mode} needs at least {need} member devices, it has {len(registered)}",
                    )
                )
        else:
            listed: list[str] = []
            for group, vdev in _vdevs(pool.mode):
                need = MIN_MEMBERS.get(vdev.mode, 1)
                if len(vdev.members) < need:
                    problems.append(
                        Problem(f"{at}.mode.topology.{group}", f"{vdev.mode} needs at least {need} members")
                    )
                listed += vdev.members
            t = pool.mode.topology
            listed += t.spare + t.cache
            devices = {_zfs_member_device(layout, p) for p in registered}
            for member in listed:
                device = member if member.startswith("/") else f"/dev/disk/by-partlabel/disk-{member}-zfs"
                if device not in devices:
                    problems.append(
                        Problem(
                            f"{at}.mode.topology",
                            f"member {member!r} ({device}) is not a device "
                            f'with content zfs pool {name!r}; name its zfs partition "zfs" or '
                            "list the device path",
                        )
                    )
            if len(listed) != len(devices):
                problems.append(
                    Problem(
                        f"{at}.mode.topology",
                        f"lists {len(listed)} members but {len(devices)} "
                        "devices have this pool as content; zpool create skips the pool",
                    )
                )
        for ds_key, ds in pool.datasets.items():
            ds_at = f"{at}.datasets.{ds_key}"
            if ds_key == "__root":
                problems.append(Problem(ds_at, "the dataset name __root is reserved by disko"))
            if isinstance(ds, ZfsVolume) and not ds.size:
                problems.append(Problem(ds_at, 'a zfs_volume needs size (e.g. "10G")'))
            if (
                isinstance(ds, ZfsFs)
                and ds.mountpoint
                and ds.options.get("mountpoint") not in (None, "legacy", ds.mountpoint)
            ):
                problems.append(
                    Problem(
                        ds_at,
                        f"mountpoint {ds.mountpoint!r} and options.mountpoint "
                        f"{ds.options['mountpoint']!r} disagree; set one of them",
                    )
                )
    return problems


def _zfs_member_device(layout: DiskLayout, path: str) -> str:
    """The by-partlabel device of a zfs member given its node path (partition content)."""
    parts = path.split(".")
    if len(parts) >= 6 and parts[0] == "disk" and parts[2:4] == ["content", "partitions"]:
        disk = layout.disk[parts[1]]
        gpt = disk.content
        assert isinstance(gpt, Gpt)
        partition = gpt.partitions[parts[4]]
        label = partition.label or default_label("disk", disk.name or parts[1], partition.name or parts[4])
        return f"/dev/disk/by-partlabel/{label}"
    if len(parts) == 3 and parts[0] == "disk":
        return layout.disk[parts[1]].device
    return path


def _lvm_problems(layout: DiskLayout) -> list[Problem]:
    problems = []
    for key, vg in layout.lvm_vg.items():
        pools = {lv.name or k for k, lv in vg.lvs.items() if lv.lvm_type == "thin-pool"}
        for lv_key, lv in vg.lvs.items():
            if lv.lvm_type == "thinlv" and lv.pool not in pools:
                problems.append(
                    Problem(
                        f"lvm_vg.{key}.lvs.{lv_key}",
                        "a thinlv needs pool = the name of a "
                        f"thin-pool LV of this group (thin pools: {', '.join(sorted(pools)) or 'none'})",
                    )
                )
    return problems


def _misc_problems(nodes: list[tuple[str, Any]]) -> list[Problem]:
    problems = []
    for path, node in nodes:
        if isinstance(node, Luks) and node.asks_password:
            problems.append(
                Problem(
                    path,
                    "it asks for a password at format time, which hangs an unattended "
                    "install; set passwordFile or settings.keyFile",
                )
            )
        if isinstance(node, Swap) and node.resumeDevice and node.randomEncryption:
            problems.append(Problem(path, "resumeDevice cannot work with randomEncryption (the key is new each boot)"))
        if isinstance(node, Btrfs | BtrfsSubvolume) and node.swap and node.mountpoint is None:
            problems.append(Problem(path, "swap files need a mountpoint to live under; set mountpoint"))
        if isinstance(node, Nodev) and node.mountpoint is None:
            key = path.split(".", 1)[1]
            if not key.startswith("/"):
                problems.append(
                    Problem(
                        path,
                        f"its mountpoint defaults to its key {key!r}, which is not an absolute "
                        'path; key it by the mountpoint (e.g. "/tmp") or set mountpoint',
                    )
                )
    return problems


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


def _mount_problems(layout: DiskLayout, nodes: list[tuple[str, Any]]) -> list[Problem]:
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


def _boot_problems(nodes: list[tuple[str, Any]], boot: BootMode) -> list[Problem]:
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


def _fit_problems(layout: DiskLayout, disk_bytes: int) -> list[Problem]:
    problems = []
    for key, disk in layout.disk.items():
        if isinstance(disk.content, Gpt):
            try:
                plan_gpt(disk.content, "disk", disk.name or key, disk_bytes)
            except PartitionFailedError as e:
                size = f"{disk_bytes / 10**9:g} GB"
                problems.append(
                    Problem(
                        f"disk.{key}.content.partitions.{e.key}",
                        f"does not fit on the {size} disk: {e.reason}",
                    )
                )
    return problems


__all__ = ["check_layout", "mounts"]
