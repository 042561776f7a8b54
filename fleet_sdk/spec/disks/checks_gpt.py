"""Checks of GPT partition tables: what sgdisk refuses or does differently from what the layout says,
labels that collide across disks, and whether the partitions fit the host's disk (reference/disko.md §3, §4, §6).
"""

from __future__ import annotations

import re

from fleet_sdk.errors import PartitionFailedError, Problem
from fleet_sdk.spec.disks.layout import DiskLayout
from fleet_sdk.spec.disks.model import Filesystem, Gpt, GptPartition
from fleet_sdk.spec.disks.partitions import default_label, plan_gpt, resolve

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

_ZERO_WITH_UNIT = re.compile(r"^0+[KMGTP]$")


def gpt_problems(path: str, gpt: Gpt) -> list[Problem]:
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


def label_problems(layout: DiskLayout) -> list[Problem]:
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


def fit_problems(layout: DiskLayout, disk_bytes: int) -> list[Problem]:
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


__all__ = ["KNOWN_TYPE_CODES", "fit_problems", "gpt_problems", "label_problems"]
