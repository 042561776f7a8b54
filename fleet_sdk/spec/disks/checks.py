"""What disko lets through but fails at install or boot (reference/disko.md §5, §6, §11).

Each problem names the node path and says what to do. `check_layout` is pure: no disks are touched.
It runs the checks of partition tables (checks_gpt), of mounts and boot (checks_mounts) and, here,
those of the devices built on partitions: pools, volume groups, arrays and their members.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fleet_sdk.errors import Problem
from fleet_sdk.spec.disks.checks_gpt import fit_problems, gpt_problems, label_problems
from fleet_sdk.spec.disks.checks_mounts import boot_problems, mount_problems, mounts
from fleet_sdk.spec.disks.layout import BootMode, DiskLayout
from fleet_sdk.spec.disks.model import (
    Bcachefs,
    Btrfs,
    BtrfsSubvolume,
    Gpt,
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
from fleet_sdk.spec.disks.partitions import default_label

MIN_MEMBERS = {"mirror": 2, "raidz": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}


def check_layout(layout: DiskLayout, boot: BootMode | None = None, disk_bytes: int | None = None) -> list[Problem]:
    problems: list[Problem] = []
    nodes = list(layout.walk())
    if not layout.disk:
        problems.append(Problem("disk", "no disks are defined; disko has nothing to partition (add disk.<name>)"))
    for path, node in nodes:
        if isinstance(node, Gpt):
            problems += gpt_problems(path, node)
        elif isinstance(node, Table):
            problems.append(Problem(path, "the legacy `table` type is deprecated by disko; use type = gpt"))
    problems += label_problems(layout)
    problems += _reference_problems(layout, nodes)
    problems += _zpool_problems(layout, nodes)
    problems += _lvm_problems(layout)
    problems += _misc_problems(nodes)
    problems += mount_problems(layout, nodes)
    if boot is not None:
        problems += boot_problems(nodes, boot)
    if disk_bytes is not None:
        problems += fit_problems(layout, disk_bytes)
    return problems


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
            problems += _topology_problems(layout, at, name, pool.mode, registered)
        problems += _dataset_problems(at, pool)
    return problems


def _topology_problems(
    layout: DiskLayout, at: str, name: str, mode: TopologyMode, registered: list[str]
) -> list[Problem]:
    """A pool's explicit topology against the devices (node paths `registered`) that name it as content."""
    problems = []
    listed: list[str] = []
    for group, vdev in _vdevs(mode):
        need = MIN_MEMBERS.get(vdev.mode, 1)
        if len(vdev.members) < need:
            problems.append(Problem(f"{at}.mode.topology.{group}", f"{vdev.mode} needs at least {need} members"))
        listed += vdev.members
    t = mode.topology
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
    return problems


def _dataset_problems(at: str, pool: Zpool) -> list[Problem]:
    problems = []
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


__all__ = ["check_layout", "mounts"]
