"""The partition table disko's sgdisk calls create (reference/disko.md §2.2, §3, §4).

disko runs one `sgdisk --align-end [--set-alignment=N] --new=i:start:end …` per partition, in
priority order. This module replays sgdisk's arithmetic (checked against real sgdisk on sparse images
in the tests):
- each run re-derives the alignment from the existing partitions' starts: the largest power of two
  (at most 2048 sectors) dividing them all, 2048 on an empty table; `--set-alignment` overrides it;
- start "0" is the first sector of the largest free block; an unaligned start moves down to the
  boundary when that space is free, else up; a "+size" end counts from the start as requested;
- an end relative to the end ("-0", "-1G") counts back from the free block's last sector rounded
  down so that end+1 is aligned (`--align-end`); "+size" ends are exact (start + size - 1);
- an alignment that would leave the free block is dropped, so a second "100%" partition does not
  fail: it gets the largest sliver left (the check reports it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from fleet_sdk.errors import PartitionFailedError, PartitionPlanError, Problem
from fleet_sdk.spec.disks.layout import DiskLayout
from fleet_sdk.spec.disks.model import Gpt, GptPartition

SECTOR = 512
DEFAULT_ALIGNMENT = 2048
GPT_RESERVED = 34  # protective MBR + header + 32 sectors of entries; the same again at the end
SMALLEST_ADVANCED_FORMAT = 585_937_500  # sectors (300 GB): from there on gdisk never aligns below 8
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_VALUE = re.compile(r"^([+-]?)(\d+)([KMGTPs]?)$")


@dataclass(frozen=True)
class PlannedPartition:
    number: int
    name: str
    label: str
    type_code: str
    start_sector: int
    end_sector: int  # inclusive

    @property
    def size_bytes(self) -> int:
        return (self.end_sector - self.start_sector + 1) * SECTOR


@dataclass(frozen=True)
class PartitionSpec:
    """A partition with disko's defaults resolved."""

    key: str
    name: str
    label: str
    type_code: str
    start: str
    end: str
    priority: int
    alignment: int


def default_label(parent_type: str, parent_name: str, partition_name: str) -> str:
    label = f"{parent_type}-{parent_name}-{partition_name}"
    # GPT names hold 36 UTF-16 units; disko hashes longer labels
    return hashlib.sha256(label.encode()).hexdigest()[:36] if len(label.encode()) > 36 else label


def resolve(gpt: Gpt, parent_type: str, parent_name: str) -> list[PartitionSpec]:
    """Partitions in creation order (priority, then key) with disko's defaults filled in."""
    specs = []
    for key in sorted(gpt.partitions, key=lambda k: k.encode()):
        p: GptPartition = gpt.partitions[key]
        name = p.name or key
        type_code = p.type or ("8200" if p.content is not None and p.content.type == "swap" else "8300")
        end = p.end if p.end is not None else ("-0" if p.size == "100%" else f"+{p.size}")
        if p.priority is not None:
            priority = p.priority
        else:
            priority = 9001 if p.size == "100%" else 100 if type_code == "EF02" else 1000
        alignment = p.alignment if p.alignment is not None else (1 if p.start.endswith("s") or end.endswith("s") else 0)
        specs.append(
            PartitionSpec(
                key,
                name,
                p.label or default_label(parent_type, parent_name, name),
                type_code.upper() if len(type_code) == 4 else type_code,
                p.start,
                end,
                priority,
                alignment,
            )
        )
    return sorted(specs, key=lambda s: s.priority)  # stable: ties keep key order


def _human(sectors: int) -> str:
    size = sectors * SECTOR
    for unit in ("P", "T", "G", "M", "K"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.4g} {unit}iB"
    return f"{size} bytes"


def _sectors(amount: int, unit: str) -> int:
    return amount if unit in ("", "s") else amount * _UNITS[unit] // SECTOR


class _Table:
    def __init__(self, total_sectors: int) -> None:
        self.first = GPT_RESERVED  # first usable LBA
        self.last = total_sectors - GPT_RESERVED  # last usable LBA (the backup table follows)
        self.total = total_sectors
        self.used: list[tuple[int, int]] = []

    def free_blocks(self) -> list[tuple[int, int]]:
        blocks, cursor = [], self.first
        for s, e in sorted(self.used):
            if s > cursor:
                blocks.append((cursor, s - 1))
            cursor = max(cursor, e + 1)
        if cursor <= self.last:
            blocks.append((cursor, self.last))
        return blocks

    def alignment(self) -> int:
        if not self.used:
            return DEFAULT_ALIGNMENT
        align = DEFAULT_ALIGNMENT
        for s, _ in self.used:
            while align > 1 and s % align:
                align //= 2
        if align < 8 and self.total >= SMALLEST_ADVANCED_FORMAT:
            align = 8
        return align

    def block_of(self, sector: int) -> tuple[int, int] | None:
        return next(((s, e) for s, e in self.free_blocks() if s <= sector <= e), None)


def _align(block: tuple[int, int], start: int, align: int) -> int:
    """gdisk's Align(): the boundary below if the space up to the start is free, else the one above
    if it is free, else the start as given."""
    if start % align == 0:
        return start
    earlier = start - start % align
    if earlier >= block[0]:
        return earlier
    if earlier + align <= block[1]:
        return earlier + align
    return start


def _create(table: _Table, spec: PartitionSpec) -> tuple[int, int]:
    """Where `sgdisk --align-end --new=i:start:end` puts the partition; ValueError if it cannot."""
    align = spec.alignment or table.alignment()
    blocks = table.free_blocks()
    if not blocks:
        raise ValueError("no free space is left on the disk")
    m = _VALUE.match(spec.start)
    if not m:
        raise ValueError(f"start {spec.start!r} is not sgdisk syntax")
    sign, amount, unit = m.group(1), int(m.group(2)), m.group(3)
    # sgdisk's frame for default and relative values is the largest free block: its first sector
    # (aligned) is the default start and the base of "+N", its last sector the base of "-N" values
    largest = max(blocks, key=lambda b: b[1] - b[0])  # the first of equal blocks
    low = _align(largest, largest[0], align)
    if sign == "" and amount == 0:
        start = low
    elif sign == "+":
        start = low + _sectors(amount, unit)
    elif sign == "-":
        start = largest[1] - _sectors(amount, unit)
    else:
        start = _sectors(amount, unit)
    block = table.block_of(start)
    if block is None:
        raise ValueError(f"its start sector {start} is not free")
    m = _VALUE.match(spec.end)
    if not m:
        raise ValueError(f"end {spec.end!r} is not sgdisk syntax")
    sign, amount, unit = m.group(1), int(m.group(2)), m.group(3)
    size = _sectors(amount, unit)
    if sign == "+":
        end = start + size - 1  # from the requested start, before alignment moves it
    elif sign == "-":
        aligned_last = (largest[1] + 1) // align * align - 1
        end = (aligned_last if aligned_last >= start else largest[1]) - size
    else:
        end = size
    start = _align(block, start, align)
    if end > block[1] or end < start:
        wanted = f"{_human(end - start + 1)} from sector {start}" if end >= start else f"to end at sector {end}"
        raise ValueError(f"it needs {wanted}, but only {_human(block[1] - start + 1)} are free there")
    return start, end


def plan_gpt(gpt: Gpt, parent_type: str, parent_name: str, disk_bytes: int) -> list[PlannedPartition]:
    table = _Table(disk_bytes // SECTOR)
    planned = []
    for number, spec in enumerate(resolve(gpt, parent_type, parent_name), start=1):
        try:
            start, end = _create(table, spec)
        except ValueError as e:
            raise PartitionFailedError(spec.key, f"sgdisk cannot create partition {number}: {e}") from None
        table.used.append((start, end))
        planned.append(PlannedPartition(number, spec.name, spec.label, spec.type_code, start, end))
    return planned


def partition_plan(layout: DiskLayout, disk_name: str, disk_bytes: int) -> list[PlannedPartition]:
    """The GPT that disko would write on disk `disk_name` of `disk_bytes` bytes."""
    disk = layout.disk.get(disk_name)
    if disk is None:
        raise PartitionPlanError([Problem(f"disk.{disk_name}", f"no such disk; disks are {', '.join(layout.disk)}")])
    if not isinstance(disk.content, Gpt):
        raise PartitionPlanError([Problem(f"disk.{disk_name}.content", "holds no gpt partition table")])
    gpt = disk.content
    try:
        return plan_gpt(gpt, "disk", disk.name or disk_name.replace("/", "_"), disk_bytes)
    except PartitionFailedError as e:
        raise PartitionPlanError([Problem(f"disk.{disk_name}.content.partitions.{e.key}", e.reason)]) from None


@dataclass(frozen=True)
class PlannedVolume:
    name: str
    priority: int
    lvcreate: tuple[str, ...]  # the size arguments disko passes


def lv_plan(layout: DiskLayout, vg_key: str) -> list[PlannedVolume]:
    """LVs of a volume group in creation order, with their lvcreate size arguments (disko §4)."""
    vg = layout.lvm_vg[vg_key]
    out = []
    for key in sorted(vg.lvs, key=lambda k: k.encode()):
        lv = vg.lvs[key]
        default = (501 if lv.lvm_type == "thin-pool" else 1000) + (251 if "100%" in lv.size else 0)
        if lv.lvm_type == "thinlv":
            args: tuple[str, ...] = ("-V", lv.size, f"--thinpool={lv.pool}")
        elif "%" in lv.size:
            args = ("-l", lv.size + "FREE" if lv.size.endswith("%") else lv.size)
        else:
            args = ("-L", lv.size)
        out.append(PlannedVolume(lv.name or key, lv.priority if lv.priority is not None else default, args))
    return sorted(out, key=lambda v: v.priority)


def zpool_vdev_args(layout: DiskLayout, pool_key: str) -> list[str]:
    """The vdev part of `zpool create` for a topology pool: plain vdevs first, then spare, log,
    dedup, special and cache; disk names stand for their `zfs` partition (disko §2.1)."""
    from fleet_sdk.spec.disks.model import TopologyMode, Vdev

    pool = layout.zpool[pool_key]
    if not isinstance(pool.mode, TopologyMode):
        raise ValueError(f"zpool.{pool_key} has no topology")
    t = pool.mode.topology

    def device(member: str) -> str:
        return member if member.startswith("/") else f"/dev/disk/by-partlabel/disk-{member}-zfs"

    def vdevs(items: list[Vdev]) -> list[str]:
        out: list[str] = []
        for v in sorted(items, key=lambda v: v.mode != ""):  # stable: empty modes first
            out += ([v.mode] if v.mode else []) + [device(m) for m in v.members]
        return out

    args = vdevs(t.vdev)
    if t.spare:
        args += ["spare", *map(device, t.spare)]
    for keyword, items in (("log", t.log), ("dedup", t.dedup)):
        if items:
            args += [keyword, *vdevs(items)]
    special = t.special if isinstance(t.special, list) else [t.special] if t.special else []
    if special:
        args += ["special", *vdevs(special)]
    if t.cache:
        args += ["cache", *map(device, t.cache)]
    return args
