"""GPT partition tables with sgdisk (Debian's gdisk), driven the way disko's format script does.

`apply` replays disko `lib/types/gpt.nix` `_create` (reference/disko.md §2.2) on a block device or
an image file: `sgdisk --clear` when blkid finds no signature on the device, then one call per
partition in the given order; when creating a partition fails, the same call without `--new` is
retried, so re-running a layout renames and retypes existing partitions (disko's idempotent re-run).
Only when both fail is the creation's error raised. Unlike disko it does not run partprobe/udevadm:
callers that need the kernel to see new partitions on a block device do that.

`read_table` reads the table back from `sgdisk --print` and `sgdisk --info=N`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleet_sdk.errors import CommandError, SgdiskError
from fleet_sdk.tools.runner import Runner

SECTOR = 512
DEFAULT_TIMEOUT = 60.0
# gdisk and util-linux install to /usr/sbin, which is not on a non-root user's PATH on Debian.
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
_PRINT_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+([0-9A-F]{4})\b")
_INFO_FIELD = re.compile(
    r"^(Partition GUID code|Partition unique GUID|First sector|Last sector|Attribute flags"
    r"|Partition name): (.*)$"
)


@dataclass(frozen=True)
class PartitionCommand:
    """One partition as disko creates it: sgdisk syntax for start/end ("0", "+1G", "-0", "2048s")."""

    number: int
    start: str
    end: str
    alignment: int  # sectors; 0 = sgdisk's own (2048 on an empty 512-byte-sector table)
    label: str
    type_code: str  # 4 hex digits (EF02) or a type GUID
    uuid: str | None = None  # partition GUID; None = random, as disko's "R"
    attributes: tuple[int, ...] = ()  # GPT attribute bits to set; all others are cleared

    def __post_init__(self) -> None:
        if self.number < 1 or self.alignment < 0:
            raise SgdiskError(
                f"partition {self.number} ({self.label}): number must be >= 1 and alignment >= 0 "
                f"(got alignment {self.alignment})"
            )


@dataclass(frozen=True)
class TableEntry:
    number: int
    label: str
    type_code: str  # sgdisk's 4-hex code, uppercase; FFFF for a type GUID sgdisk has no code for
    type_guid: str
    partition_guid: str
    start_sector: int
    end_sector: int  # inclusive
    attributes: tuple[int, ...]  # set GPT attribute bits, ascending

    @property
    def size_sectors(self) -> int:
        return self.end_sector - self.start_sector + 1


def tool(name: str) -> str | None:
    """Where `name` is installed: PATH first, then the sbin directories."""
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def create_image(path: Path, size_bytes: int) -> Path:
    """A new sparse image file of `size_bytes` bytes (whole 512-byte sectors), like `truncate -s`."""
    if size_bytes <= 0 or size_bytes % SECTOR:
        raise SgdiskError(f"image {path}: size {size_bytes} is not a positive multiple of {SECTOR} bytes")
    try:
        with open(path, "xb"):
            pass
    except FileExistsError:
        raise SgdiskError(f"image {path} already exists; remove it or choose another path") from None
    os.truncate(path, size_bytes)
    return path


def partition_argv(device: Path, part: PartitionCommand, *, create: bool) -> list[str]:
    """disko's sgdisk call for one partition; without `create`, its rename/retype-only retry."""
    n = part.number
    argv = [_sgdisk()]
    if create:
        argv.append("--align-end")
        if part.alignment:
            argv.append(f"--set-alignment={part.alignment}")
        argv.append(f"--new={n}:{part.start}:{part.end}")
    argv += [
        f"--partition-guid={n}:{part.uuid or 'R'}",
        f"--change-name={n}:{part.label}",
        f"--typecode={n}:{part.type_code}",
        f"--attributes={n}:=:0",
        *(f"--attributes={n}:set:{bit}" for bit in dict.fromkeys(part.attributes)),
        str(device),
    ]
    return argv


def apply(runner: Runner, device: Path, commands: list[PartitionCommand], *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Create the partitions on `device` in list order, as disko's format script does."""
    _require_device(device)
    probe = runner.run([_installed("blkid", "util-linux"), "--probe", str(device)], check=False, timeout=timeout)
    if probe.returncode != 0:  # no signature: a fresh disk gets an empty GPT first
        runner.run([_sgdisk(), "--clear", str(device)], timeout=timeout)
    for part in commands:
        hint = (
            f"sgdisk could not create partition {part.number} ({part.label}) from {part.start} to {part.end} "
            f"on {device}: there is no free space there; check the sizes, and that only the last "
            'partition is "100%" and nothing is ordered after it'
        )
        try:
            runner.run(partition_argv(device, part, create=True), timeout=timeout, hint=hint)
        except CommandError as failed:
            retry = runner.run(partition_argv(device, part, create=False), timeout=timeout, check=False)
            if retry.returncode != 0:
                raise failed from None


def read_table(runner: Runner, device: Path, *, timeout: float = DEFAULT_TIMEOUT) -> list[TableEntry]:
    """The GPT partitions on `device` by number; [] when it has no partition table yet."""
    _require_device(device)
    printed = runner.run([_sgdisk(), "--print", str(device)], timeout=timeout).stdout.decode(errors="replace")
    codes = {int(m[1]): m[4] for m in map(_PRINT_ROW.match, printed.splitlines()) if m}
    if not codes:
        return []
    argv = [_sgdisk(), *(f"--info={n}" for n in sorted(codes)), str(device)]
    info = runner.run(argv, timeout=timeout).stdout.decode(errors="replace")
    blocks = _info_blocks(info)
    if len(blocks) != len(codes):
        raise SgdiskError(f"could not read `sgdisk --info` for {device}: {len(blocks)} of {len(codes)} partitions")
    return [_entry(n, codes[n], fields) for n, fields in zip(sorted(codes), blocks, strict=True)]


def _info_blocks(text: str) -> list[dict[str, str]]:
    """One dict per `--info` block; every block starts with its "Partition GUID code" line."""
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        m = _INFO_FIELD.match(line)
        if not m:
            continue
        if m[1] == "Partition GUID code":
            blocks.append({})
        if blocks:
            blocks[-1][m[1]] = m[2]
    return blocks


def _entry(number: int, code: str, fields: dict[str, str]) -> TableEntry:
    try:
        name = fields["Partition name"]
        flags = int(fields["Attribute flags"], 16)
        return TableEntry(
            number=number,
            label=name[1:-1] if len(name) >= 2 and name[0] == name[-1] == "'" else name,
            type_code=code,
            type_guid=fields["Partition GUID code"].split()[0],
            partition_guid=fields["Partition unique GUID"],
            start_sector=int(fields["First sector"].split()[0]),
            end_sector=int(fields["Last sector"].split()[0]),
            attributes=tuple(bit for bit in range(64) if flags >> bit & 1),
        )
    except (KeyError, ValueError, IndexError) as e:
        raise SgdiskError(f"could not read `sgdisk --info={number}` output ({e!r}): {fields}") from None


def _require_device(device: Path) -> None:
    if not Path(device).exists():
        raise SgdiskError(f"{device} does not exist; pass a block device or an image file (see create_image)")


def _installed(name: str, package: str) -> str:
    found = tool(name)
    if found is None:
        raise SgdiskError(f"{name} is not installed; install it (Debian package {package})")
    return found


def _sgdisk() -> str:
    return _installed("sgdisk", "gdisk")
