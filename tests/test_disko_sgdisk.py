"""The partition plan (fleet_sdk.spec.disks.partitions) against real sgdisk, driven the way disko does.

Each case replays disko's format script on a fresh sparse image of the disk's exact size: the gpt's
partitions in creation order (`resolve`), numbered 1..n, one `sgdisk --align-end --new=…` each via
`fleet_sdk.tools.sgdisk.apply`. The table read back must be `partition_plan` exactly (numbers, labels, type
codes, first and last sectors); when the plan refuses the table, sgdisk must fail as well, on the same
partition, having saved exactly the partitions planned before it.

Cases: the prod layouts on their hosts' disks (Hetzner cx43 160 GB and cx53 320 GB BIOS, ccx23 160 GB
UEFI, GCP 100 GB UEFI), every gpt disk of the valid examples of reference/disko.md §11 on a 10 GiB and an odd-sized
image, and random tables from hypothesis.

sgdisk sleeps a second after every write, so all fixed cases are replayed at once in background threads
started before the first test of the module (the hypothesis test comes first and overlaps them), and
each hypothesis example replays a batch of tables in parallel.

With CI=true a missing sgdisk/blkid fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sdk.disko import DiskLayout, PartitionPlanError
from fleet_sdk.errors import CommandError
from fleet_sdk.spec.disks.model import Gpt
from fleet_sdk.spec.disks.partitions import PartitionSpec, partition_plan, plan_gpt, resolve
from fleet_sdk.tools import sgdisk
from fleet_sdk.tools.runner import LOCAL
from tests.tools import require

from .conftest import prod_fleet
from .disko_examples import VALID
from .disko_strategies import gpt_tables

pytestmark = pytest.mark.integration

GIB = 1024**3
GB = 10**9
ODD = 10**9 + 12345 * 512  # not a multiple of any alignment: the last usable sector is odd

# the prod layouts (stacks/prod.py) on the disks of their hosts (pyrite, bare metal, has no size here)
PROD: dict[str, tuple[DiskLayout, str, int]] = {
    f"prod-{m.name}-{m.shape.name}-{m.disk_bytes // GB}GB": (m.disks, next(iter(m.disks.disk)), m.disk_bytes)
    for m in prod_fleet().machines
    if m.disks is not None and m.shape is not None and m.disk_bytes
}


def _example_cases() -> Iterator[tuple[str, DiskLayout, str, int]]:
    for name, devices in VALID.items():
        layout = DiskLayout.from_disko(copy.deepcopy(devices))
        for key, disk in layout.disk.items():
            if isinstance(disk.content, Gpt):
                for size_name, size in (("10GiB", 10 * GIB), ("odd", ODD)):
                    yield f"{name}-{key}-{size_name}", layout, key, size


def _disk(partitions: dict[str, Any]) -> DiskLayout:
    return DiskLayout.from_disko(
        {"disk": {"d": {"device": "/dev/vdz", "content": {"type": "gpt", "partitions": partitions}}}}
    )


# Tables where the plan and sgdisk 1.0.9 disagree (bugs in fleet_sdk.spec.disks.partitions): reason, layout, size
KNOWN_BUGS: dict[str, tuple[str, DiskLayout, int]] = {
    "align-8-from-300GB": (
        "plan.SMALLEST_ADVANCED_FORMAT is 1503238553 sectors with `>`; gdisk 1.0.9 aligns to at least "
        "8 sectors on disks of >= 585937500 sectors (300 GB): 'next' starts at 4128, the plan says 4123",
        _disk({"lit": {"start": "501s", "end": "4122s"}, "next": {"size": "1M"}}),
        320 * GB,  # a Hetzner cx53 disk
    ),
    "end-from-largest-free-block-fails": (
        "sgdisk counts a '-N' end from the end of the largest free block, not of the block holding an "
        "explicit start: it refuses 100s..-0 (to 204766, over 'a'); the plan says 100..39999",
        _disk({"a": {"start": "40000s", "end": "50000s"}, "b": {"start": "100s", "end": "-0"}}),
        100 * 1024**2,
    ),
    "end-from-largest-free-block-fits": (
        "sgdisk counts a '-N' end from the end of the largest free block: 100s..-170000s is "
        "100..34766; the plan refuses it ('needs to end at sector -130001')",
        _disk({"a": {"start": "40000s", "end": "50000s"}, "b": {"start": "100s", "end": "-170000s"}}),
        100 * 1024**2,
    ),
    "start-from-largest-free-block": (
        "sgdisk counts a '-N' start from the end of the largest free block (139999 here); the plan counts "
        "from the disk's last usable sector and refuses it ('start sector 194766 is not free')",
        _disk({"a": {"start": "150000s", "end": "-0"}, "b": {"start": "-10000s", "end": "+100s"}}),
        100 * 1024**2,
    ),
}

CASES: dict[str, tuple[DiskLayout, str, int]] = {
    **PROD,
    **{name: (layout, key, size) for name, layout, key, size in _example_cases()},
    **{name: (layout, "d", size) for name, (_, layout, size) in KNOWN_BUGS.items()},
}


@dataclass(frozen=True)
class Replay:
    specs: list[PartitionSpec]  # in creation order
    table: list[sgdisk.TableEntry]  # read back after apply
    error: CommandError | None  # apply's error, if creating a partition failed


def parent_name(layout: DiskLayout, disk_key: str) -> str:
    return layout.disk[disk_key].name or disk_key.replace("/", "_")


def replay(layout: DiskLayout, disk_key: str, size: int, image: Path) -> Replay:
    """disko's format script for one disk: `apply` the resolved partitions to a fresh image."""
    gpt = layout.disk[disk_key].content
    assert isinstance(gpt, Gpt)
    specs = resolve(gpt, "disk", parent_name(layout, disk_key))
    commands = [
        sgdisk.PartitionCommand(
            number,
            spec.start,
            spec.end,
            spec.alignment,
            spec.label,
            spec.type_code,
            uuid=gpt.partitions[spec.key].uuid,
            attributes=tuple(gpt.partitions[spec.key].attributes),
        )
        for number, spec in enumerate(specs, start=1)
    ]
    sgdisk.create_image(image, size)
    error = None
    try:
        sgdisk.apply(LOCAL, image, commands)
    except CommandError as e:
        error = e
    try:
        return Replay(specs, sgdisk.read_table(LOCAL, image), error)
    finally:
        image.unlink()


def rows(entries: list[sgdisk.TableEntry], codes: list[str]) -> list[tuple[int, str, str, int, int]]:
    """The table as plan rows; a type given as a GUID is compared with the entry's type GUID."""
    guid = [len(code) > 4 for code in codes] + [False] * len(entries)
    return [
        (e.number, e.label, e.type_guid if guid[i] else e.type_code, e.start_sector, e.end_sector)
        for i, e in enumerate(entries)
    ]


def assert_sgdisk_made_the_plan(layout: DiskLayout, disk_key: str, size: int, done: Replay) -> None:
    prefix = f"disk.{disk_key}.content.partitions."
    try:
        plan = partition_plan(layout, disk_key, size)
    except PartitionPlanError as e:
        assert done.error is not None, f"the plan refuses the table ({e}), sgdisk made {done.table}"
        failed = e.problems[0].path.removeprefix(prefix)
        before = [s.key for s in done.specs][: [s.key for s in done.specs].index(failed)]
        gpt = layout.disk[disk_key].content
        assert isinstance(gpt, Gpt)
        part = gpt.model_copy(update={"partitions": {k: gpt.partitions[k] for k in before}})
        plan = plan_gpt(part, "disk", parent_name(layout, disk_key), size)
        assert f"Could not create partition {len(before) + 1} " in done.error.stderr, done.error.stderr
    else:
        assert done.error is None, f"sgdisk failed ({done.error}) where the plan is {plan}"
    expected = [(p.number, p.label, p.type_code, p.start_sector, p.end_sector) for p in plan]
    assert rows(done.table, [p.type_code for p in plan]) == expected


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require(("sgdisk", "gdisk"), ("blkid", "util-linux"), find=sgdisk.tool)


@pytest.fixture(scope="module")
def folder(_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("disko-images")


_image_names = itertools.count()


def fresh_image(folder: Path) -> Path:
    return folder / f"{next(_image_names)}.img"


@pytest.fixture(scope="module", autouse=True)
def replays(folder: Path) -> Iterator[dict[str, Future[Replay]]]:
    """Every fixed case replayed in the background, from the first test of the module on."""
    with ThreadPoolExecutor(len(CASES)) as pool:
        yield {
            name: pool.submit(replay, layout, key, size, fresh_image(folder))
            for name, (layout, key, size) in CASES.items()
        }


# -- random tables (first, so that the fixed cases replay meanwhile) --------------------------

BATCH = 5  # tables per example, replayed in parallel: an example takes 1 s per partition + 1 s


@settings(max_examples=3, deadline=None)
@given(tables=st.lists(gpt_tables(max_partitions=4), min_size=BATCH, max_size=BATCH))
def test_random_tables_match_sgdisk_or_both_refuse(tables: list[tuple[dict[str, Any], int]], folder: Path) -> None:
    layouts = [DiskLayout.from_disko({"disk": {"d": disk}}) for disk, _ in tables]
    with ThreadPoolExecutor(len(tables)) as pool:
        done = list(pool.map(lambda i: replay(layouts[i], "d", tables[i][1], fresh_image(folder)), range(len(tables))))
    for layout, (_, size), replayed in zip(layouts, tables, done, strict=True):
        assert_sgdisk_made_the_plan(layout, "d", size, replayed)


# -- fixed cases -------------------------------------------------------------------------------


def test_prod_cases_cover_both_boot_modes_and_every_cloud_disk() -> None:
    machines = [m for m in prod_fleet().machines if m.disks is not None and m.shape is not None]
    assert len(PROD) == len(machines) == 5
    assert {m.shape.boot for m in machines if m.shape} == {"bios", "uefi"}


@pytest.mark.parametrize("case", [c for c in CASES if c not in KNOWN_BUGS])
def test_sgdisk_makes_the_plan(case: str, replays: dict[str, Future[Replay]]) -> None:
    layout, disk_key, size = CASES[case]
    assert_sgdisk_made_the_plan(layout, disk_key, size, replays[case].result())


@pytest.mark.parametrize(
    "case",
    list(KNOWN_BUGS),  # were plan bugs (reason in KNOWN_BUGS); fixed, kept as regression cases
)
def test_known_plan_bugs(case: str, replays: dict[str, Future[Replay]]) -> None:
    layout, disk_key, size = CASES[case]
    assert_sgdisk_made_the_plan(layout, disk_key, size, replays[case].result())


def test_prod_plans_in_detail(replays: dict[str, Future[Replay]]) -> None:
    # sgdisk's own numbers: 1 MiB alignment, "-0" rounded down to a 1 MiB boundary by --align-end
    # labels as the user's disko files give them: what the installed disks already carry
    bios = replays["prod-cinnabar-cx43-160GB"].result().table
    last = (160 * GB // 512 - 34) // 2048 * 2048 - 1  # 312498175
    assert [(e.number, e.label, e.type_code, e.start_sector, e.end_sector) for e in bios] == [
        (1, "disk-main-boot", "EF02", 2048, 4095),
        (2, "disk-main-grub", "8300", 4096, 2101247),
        (3, "disk-main-zfs", "8300", 2101248, last),
    ]
    gcp = replays["prod-galena-e2-standard-8-100GB"].result().table
    assert [(e.label, e.type_code, e.start_sector, e.end_sector) for e in gcp] == [
        ("disk-primary-ESP", "EF00", 2048, 2099199),
        ("disk-primary-zfs", "8300", 2099200, (100 * GB // 512 - 34) // 2048 * 2048 - 1),
    ]


def test_odd_sized_v5_fails_on_the_same_partition(replays: dict[str, Future[Replay]]) -> None:
    # example/swap.nix on a ~1 GB disk: root (end "-1G", third) cannot fit; sgdisk stops there
    done = replays["V5-main-odd"].result()
    assert done.error is not None and "Could not create partition 3" in done.error.stderr
    assert [e.label for e in done.table] == ["disk-main-ESP", "disk-main-encryptedSwap"]
    with pytest.raises(PartitionPlanError) as e:
        partition_plan(CASES["V5-main-odd"][0], "main", ODD)
    assert [p.path for p in e.value.problems] == ["disk.main.content.partitions.root"]
