"""The lvcreate plan of a volume group (reference/disko.md §4): thin pools before the volumes in them,
`100%` volumes last, `-V` for thin volumes, `-l` with FREE for bare percentages, `-L` for sizes, and
an explicit priority or name winning. A wrong argument here creates the wrong volume on the machine."""

from __future__ import annotations

import copy

from fleet_sdk.disko import DiskLayout
from fleet_sdk.spec.disks.partitions import lv_plan

from .disko_examples import VALID


def _plan(lvs: dict) -> list[tuple[str, int, tuple[str, ...]]]:
    spec = copy.deepcopy(VALID["V8"])
    spec["lvm_vg"]["pool"]["lvs"] = lvs
    return [(v.name, v.priority, v.lvcreate) for v in lv_plan(DiskLayout.from_disko(spec), "pool")]


def test_thin_pool_then_thin_volumes() -> None:
    assert _plan(
        {
            "thin": {"size": "10G", "lvm_type": "thinlv", "pool": "tp"},
            "tp": {"size": "100M", "lvm_type": "thin-pool"},
        }
    ) == [
        ("tp", 501, ("-L", "100M")),
        ("thin", 1000, ("-V", "10G", "--thinpool=tp")),
    ]


def test_a_full_thin_pool_still_comes_before_plain_volumes() -> None:
    assert _plan(
        {
            "data": {"size": "1G"},
            "tp": {"size": "100%", "lvm_type": "thin-pool"},
        }
    ) == [
        ("tp", 752, ("-l", "100%FREE")),
        ("data", 1000, ("-L", "1G")),
    ]


def test_percentages() -> None:
    assert _plan(
        {
            "a": {"size": "100%"},
            "b": {"size": "50%VG"},
            "c": {"size": "20%"},
            "d": {"size": "100%FREE"},
        }
    ) == [
        ("b", 1000, ("-l", "50%VG")),
        ("c", 1000, ("-l", "20%FREE")),
        ("a", 1251, ("-l", "100%FREE")),
        ("d", 1251, ("-l", "100%FREE")),
    ]


def test_explicit_priority_and_name_win() -> None:
    assert _plan(
        {
            "late": {"size": "1M", "priority": 2000},
            "first": {"size": "100%", "priority": 10, "name": "renamed"},
            "zero": {"size": "1M", "priority": 0},
        }
    ) == [
        ("zero", 0, ("-L", "1M")),
        ("renamed", 10, ("-l", "100%FREE")),
        ("late", 2000, ("-L", "1M")),
    ]
