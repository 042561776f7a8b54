"""Checks of a zpool topology (reference/disko.md §2.1): a short vdev is named by its group (vdev, log,
dedup, special: the user has to know which one to fix), `special` may be one vdev or a list, and members
are matched to the devices that carry the pool: a partition by its partlabel, a whole disk by its path,
a partition of an md array by nothing (zpool would get a device that does not exist)."""

from __future__ import annotations

import copy

import pytest

from fleet_sdk.disko import DiskLayout

from .disko_examples import VALID, disk

AT = "zpool.zroot.mode.topology"


def _problems(spec: dict) -> list[str]:
    return [str(p) for p in DiskLayout.from_disko(spec).check()]


def _v9() -> dict:
    return copy.deepcopy(VALID["V9"])


def test_v9_has_no_problems() -> None:
    assert _problems(_v9()) == []


@pytest.mark.parametrize("group", ["vdev", "log", "dedup", "special"])
def test_a_short_mirror_is_named_by_its_group(group: str) -> None:
    spec = _v9()
    topology = spec["zpool"]["zroot"]["mode"]["topology"]
    topology[group].append({"mode": "raidz2", "members": []})
    assert f"{AT}.{group}: raidz2 needs at least 3 members" in _problems(spec)


def test_special_may_be_one_vdev() -> None:
    spec = _v9()
    topology = spec["zpool"]["zroot"]["mode"]["topology"]
    topology["special"] = {"mode": "mirror", "members": ["special1", "special2"]}
    del spec["disk"]["special3"]
    assert _problems(spec) == []
    topology["special"] = {"mode": "mirror", "members": ["special1"]}
    del spec["disk"]["special2"]
    assert _problems(spec) == [f"{AT}.special: mirror needs at least 2 members"]


def test_without_special_every_special_disk_is_unlisted() -> None:
    spec = _v9()
    spec["zpool"]["zroot"]["mode"]["topology"].pop("special")
    problems = _problems(spec)
    assert f"{AT}: lists 11 members but 14 devices have this pool as content; zpool create skips the pool" in problems


def _whole_disk_pool(member: str) -> dict:
    return {
        "disk": {
            "boot": disk(
                "/dev/vda",
                {
                    "ESP": {
                        "size": "500M",
                        "type": "EF00",
                        "content": {"type": "filesystem", "format": "vfat", "mountpoint": "/boot"},
                    },
                    "root": {"size": "100%", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"}},
                },
            ),
            "big": {"type": "disk", "device": "/dev/vdb", "content": {"type": "zfs", "pool": "tank"}},
        },
        "zpool": {
            "tank": {"type": "zpool", "mode": {"topology": {"type": "topology", "vdev": [{"members": [member]}]}}},
        },
    }


def test_a_whole_disk_member_is_its_device_path() -> None:
    assert _problems(_whole_disk_pool("/dev/vdb")) == []


def test_a_whole_disk_member_named_otherwise_is_refused() -> None:
    assert _problems(_whole_disk_pool("/dev/vdc")) == [
        "zpool.tank.mode.topology: member '/dev/vdc' (/dev/vdc) is not a device with content zfs pool 'tank'; "
        'name its zfs partition "zfs" or list the device path'
    ]


def test_a_partition_member_goes_by_its_label() -> None:
    spec = _v9()
    spec["disk"]["cache"]["content"]["partitions"]["zfs"]["label"] = "fast-cache"
    topology = spec["zpool"]["zroot"]["mode"]["topology"]
    topology["cache"] = ["/dev/disk/by-partlabel/fast-cache"]
    assert _problems(spec) == []
    spec["disk"]["cache"]["name"] = "renamed"
    del spec["disk"]["cache"]["content"]["partitions"]["zfs"]["label"]
    topology["cache"] = ["/dev/disk/by-partlabel/disk-renamed-zfs"]
    assert _problems(spec) == []


def test_a_partition_of_an_md_array_is_no_member_device() -> None:
    spec = _whole_disk_pool("/dev/md/md0")
    md_member = {"size": "100%", "content": {"type": "mdraid", "name": "md0"}}
    spec["disk"]["big"] = disk("/dev/vdb", {"md": md_member})
    spec["disk"]["other"] = disk("/dev/vdc", {"md": md_member})
    spec["mdadm"] = {
        "md0": {
            "type": "mdadm",
            "level": 1,
            "content": {
                "type": "gpt",
                "partitions": {"z": {"size": "100%", "content": {"type": "zfs", "pool": "tank"}}},
            },
        }
    }
    assert _problems(spec) == [
        "zpool.tank.mode.topology: member '/dev/md/md0' (/dev/md/md0) is not a device with content zfs pool "
        "'tank'; name its zfs partition \"zfs\" or list the device path"
    ]
