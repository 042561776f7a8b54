"""fleet_sdk.tools.sgdisk against the real sgdisk (Debian's gdisk) on sparse image files.

The expected sectors are sgdisk's own arithmetic on a 10 GiB image of 512-byte sectors:
- 10 GiB = 20971520 sectors. GPT keeps sectors 0-33 (protective MBR, header, 32 sectors of entries)
  and the same 33 at the end, so the usable sectors are 34..20971486.
- On an empty table sgdisk aligns starts to 2048 sectors (1 MiB): the first partition starts at 2048.
- "+1M" is 2048 sectors, "+1G" 2097152; a "+size" end is start + size - 1.
- With `--align-end`, an end counted from the disk's end ("-0") is rounded down so that end + 1 is a
  multiple of 2048: (20971486 + 1) // 2048 * 2048 - 1 = 20969471. That leaves 20969472..20971486
  (2015 sectors) free at the end, next to the 34..2047 (2014 sectors) gap at the start.

sgdisk sleeps one second after every write (its Linux DiskSync, meant for the kernel to re-read a
block device), so the layouts are applied once per module, each to its own image, in parallel threads.

With CI=true a missing sgdisk/blkid fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet_sdk.errors import CommandError
from fleet_sdk.tools import sgdisk
from fleet_sdk.tools.runner import LOCAL
from fleet_sdk.tools.sgdisk import PartitionCommand as P
from tests.tools import require

pytestmark = pytest.mark.integration

GIB = 1024**3
LAST_USABLE = 20971486  # 10 GiB image
ALIGNED_END = 20969471  # "-0" with --align-end
BIOS_BOOT_GUID = "21686148-6449-6E6F-744E-656564454649"
ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_FS_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
SOLARIS_ROOT_GUID = "6A85CF4D-1DD2-11B2-99A6-080020736631"

# disko's BIOS layout in priority order: EF02 (priority 100), /boot (1000), 100% zfs (9001)
BIOS = [
    P(1, "0", "+1M", 0, "disk-main-bios", "EF02"),
    P(2, "0", "+1G", 0, "disk-main-boot", "8300"),
    P(3, "0", "-0", 0, "disk-main-zfs", "BF00"),
]


UUID = "0B2D3A84-5A1E-4C3F-9E0A-2F5C8B1D7E61"

# name -> (partitions, expected (number, start sector, end sector)) of sgdisk's alignment rules
ALIGNMENT = {
    # disko sets alignment 1 for "…s" values: sectors are taken literally. Later partitions then align
    # to 1 too: sgdisk derives the alignment from the existing starts (2049 is odd).
    "alignment-1-is-literal": (
        [P(1, "2049s", "10000s", 1, "a", "8300"), P(2, "0", "+1M", 0, "b", "8300")],
        [(1, 2049, 10000), (2, 10001, 12048)],
    ),
    # With the default alignment a start moves to a 1 MiB boundary: down when that sector is free
    # (2049 -> 2048), else up (5001 -> 6144, as 4096 is in use); an absolute end is kept even with
    # --align-end, and "+1M" counts from the requested start 5001, not from 6144.
    "default-alignment-moves-starts": (
        [P(1, "2049s", "5000s", 0, "a", "8300"), P(2, "5001s", "+1M", 0, "b", "8300")],
        [(1, 2048, 5000), (2, 6144, 7048)],  # 7048 = 5001 + 2048 - 1
    ),
    # --align-end leaves "+size" ends alone and rounds ends counted from the disk's end down:
    # 20971486 - 2097152 ("-1G") = 18874334 -> (18874334 + 1) // 2048 * 2048 - 1 = 18872319.
    "align-end": (
        [P(1, "0", "+3000s", 0, "a", "8300"), P(2, "0", "-1G", 0, "b", "8300")],
        [(1, 2048, 5047), (2, 6144, 18872319)],  # 5047 = 2048 + 3000 - 1; 6144: next 1 MiB boundary
    ),
}
# name -> the apply() calls made, in order, on a fresh image of its own
LAYOUTS: dict[str, list[list[P]]] = {
    "bios": [BIOS],
    "uefi": [[P(1, "0", "+1G", 0, "disk-main-ESP", "EF00"), P(2, "0", "-0", 0, "disk-main-root", "8300")]],
    "leftovers": [[*BIOS, P(4, "0", "-0", 0, "disk-main-zfs2", "BF00"), P(5, "0", "-0", 0, "disk-main-zfs3", "BF00")]],
    "rerun": [BIOS, [P(3, "0", "-0", 0, "disk-main-root", "8300", uuid=UUID, attributes=(2, 63, 2))]],
    "odd": [[P(1, "0", "+1M", 0, "disk-vdb-name with spaces", "EFEF"), P(2, "0", "+1M", 0, "it's ünï", "8300")]],
    **{name: [commands] for name, (commands, _) in ALIGNMENT.items()},
}


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require(("sgdisk", "gdisk"), ("blkid", "util-linux"), find=sgdisk.tool)


@pytest.fixture(scope="module")
def images(_tools: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")

    def build(name: str) -> Path:
        image = sgdisk.create_image(folder / f"{name}.img", 10 * GIB)
        for commands in LAYOUTS[name]:
            sgdisk.apply(LOCAL, image, commands)
        return image

    with ThreadPoolExecutor(len(LAYOUTS)) as pool:
        return dict(zip(LAYOUTS, pool.map(build, LAYOUTS), strict=True))


def geometry(device: Path) -> list[tuple[int, str, str, int, int]]:
    return [(e.number, e.label, e.type_code, e.start_sector, e.end_sector) for e in sgdisk.read_table(LOCAL, device)]


def test_create_image_is_sparse_and_refuses_bad_requests(tmp_path: Path) -> None:
    img = sgdisk.create_image(tmp_path / "a.img", 10 * GIB)
    assert img.stat().st_size == 10 * GIB
    assert img.stat().st_blocks == 0  # nothing allocated
    assert sgdisk.read_table(LOCAL, img) == []  # no partition table yet
    with pytest.raises(sgdisk.SgdiskError, match="already exists"):
        sgdisk.create_image(img, GIB)
    with pytest.raises(sgdisk.SgdiskError, match="multiple of 512"):
        sgdisk.create_image(tmp_path / "b.img", 1000)


def test_bios_layout(images: dict[str, Path]) -> None:
    assert geometry(images["bios"]) == [
        (1, "disk-main-bios", "EF02", 2048, 4095),  # first aligned sector, 2048 sectors
        (2, "disk-main-boot", "8300", 4096, 2101247),  # 4096 + 2097152 - 1
        (3, "disk-main-zfs", "BF00", 2101248, ALIGNED_END),  # the rest, end rounded down to 1 MiB
    ]
    entries = sgdisk.read_table(LOCAL, images["bios"])
    assert [e.type_guid for e in entries] == [BIOS_BOOT_GUID, LINUX_FS_GUID, SOLARIS_ROOT_GUID]
    assert entries[2].size_sectors == 18868224
    assert len({e.partition_guid for e in entries}) == 3  # random partition GUIDs ("R")
    assert all(e.attributes == () for e in entries)
    assert images["bios"].stat().st_blocks * 512 < 1024**2  # still sparse: only GPT structures written


def test_uefi_layout(images: dict[str, Path]) -> None:
    assert geometry(images["uefi"]) == [
        (1, "disk-main-ESP", "EF00", 2048, 2099199),  # 2048 + 2097152 - 1
        (2, "disk-main-root", "8300", 2099200, ALIGNED_END),
    ]
    assert sgdisk.read_table(LOCAL, images["uefi"])[0].type_guid == ESP_GUID


@pytest.mark.parametrize("name", ALIGNMENT)
def test_alignment(images: dict[str, Path], name: str) -> None:
    expected = ALIGNMENT[name][1]
    assert [(e.number, e.start_sector, e.end_sector) for e in sgdisk.read_table(LOCAL, images[name])] == expected


def test_second_100_percent_partition_takes_the_leftovers_then_creation_fails(
    images: dict[str, Path],
) -> None:
    # disko does not reject two "100%" partitions, and sgdisk does not fail on the second one: start "0"
    # picks the largest free block, which after the aligned first "-0" is the 2015-sector tail; a third
    # gets the 2014-sector gap before sector 2048. Only the fourth finds no room.
    image = images["leftovers"]
    assert geometry(image)[3:] == [
        (4, "disk-main-zfs2", "BF00", ALIGNED_END + 1, LAST_USABLE),
        (5, "disk-main-zfs3", "BF00", 34, 2047),
    ]
    before = geometry(image)
    with pytest.raises(CommandError) as e:
        sgdisk.apply(LOCAL, image, [P(6, "0", "-0", 0, "disk-main-zfs4", "BF00")])
    assert e.value.returncode == 4
    assert "Could not create partition 6" in e.value.stderr
    assert "disk-main-zfs4" in str(e.value) and 'only the last partition is "100%"' in str(e.value)
    assert geometry(image) == before  # sgdisk saves nothing on error


def test_partition_after_100_percent_raises(images: dict[str, Path]) -> None:
    with pytest.raises(CommandError, match="Could not create partition 4"):
        sgdisk.apply(LOCAL, images["bios"], [P(4, "0", "+1G", 0, "disk-main-late", "8300")])
    assert [e.number for e in sgdisk.read_table(LOCAL, images["bios"])] == [1, 2, 3]


def test_rerun_renames_and_retypes_existing_partitions(images: dict[str, Path]) -> None:
    # disko's idempotent re-run: no --clear (blkid sees the GPT), --new fails on the existing
    # partition 3, and the retry without --new renames, retypes and resets its GUID and attributes
    assert geometry(images["rerun"]) == [
        *geometry(images["bios"])[:2],
        (3, "disk-main-root", "8300", 2101248, ALIGNED_END),
    ]
    third = sgdisk.read_table(LOCAL, images["rerun"])[2]
    assert third.partition_guid == UUID
    assert third.attributes == (2, 63)


def test_unknown_hex_type_code_and_odd_labels(images: dict[str, Path]) -> None:
    # sgdisk 1.0.9 only warns about a 4-hex code it does not know and uses 8300: the layout model must
    # reject unknown codes itself. Labels come back verbatim (spaces, quotes, non-ASCII).
    assert geometry(images["odd"]) == [
        (1, "disk-vdb-name with spaces", "8300", 2048, 4095),
        (2, "it's ünï", "8300", 4096, 6143),
    ]


def test_argv_is_disko_format_script() -> None:
    part = P(2, "0", "+1G", 1, "disk-main-ESP", "EF00", attributes=(0, 2, 0))
    device = Path("/dev/sda")
    name = sgdisk.tool("sgdisk")
    assert sgdisk.partition_argv(device, part, create=True) == [
        name,
        "--align-end",
        "--set-alignment=1",
        "--new=2:0:+1G",
        "--partition-guid=2:R",
        "--change-name=2:disk-main-ESP",
        "--typecode=2:EF00",
        "--attributes=2:=:0",
        "--attributes=2:set:0",
        "--attributes=2:set:2",
        "/dev/sda",
    ]
    assert sgdisk.partition_argv(device, part, create=False)[1:4] == [
        "--partition-guid=2:R",
        "--change-name=2:disk-main-ESP",
        "--typecode=2:EF00",
    ]


def test_missing_device(tmp_path: Path) -> None:
    with pytest.raises(sgdisk.SgdiskError, match="does not exist"):
        sgdisk.read_table(LOCAL, tmp_path / "nope.img")
