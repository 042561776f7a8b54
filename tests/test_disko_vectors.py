"""reference/disko.md §11: valid examples round-trip and number their partitions as disko does;
invalid ones are refused naming the node."""

from __future__ import annotations

import copy

import pytest

from fleet_sdk.disko import DiskLayout, DiskoError
from fleet_sdk.spec.disks.partitions import lv_plan, zpool_vdev_args

from .disko_examples import LONG, V9_ZFS_VDEVS_DISKS, VALID, disk, fs

GIB = 1024**3


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_examples_round_trip_and_pass_the_checks(name: str) -> None:
    layout = DiskLayout.from_disko(copy.deepcopy(VALID[name]))
    assert layout.to_disko() == VALID[name]
    assert DiskLayout.from_disko(layout.to_disko()) == layout
    assert layout.check() == []


def plan(name: str, disk_name: str = "main", size: int = 10 * GIB) -> list[tuple[int, str, str, str]]:
    layout = DiskLayout.from_disko(VALID[name])
    return [(p.number, p.name, p.type_code, p.label) for p in layout.partition_plan(disk_name, size)]


def test_v4_hybrid_numbers() -> None:
    assert plan("V4") == [
        (1, "boot", "EF02", "disk-main-boot"),
        (2, "ESP", "EF00", "disk-main-ESP"),
        (3, "root", "8300", "disk-main-root"),
    ]
    assert DiskLayout.from_disko(VALID["V4"]).check(boot="bios") == []
    assert DiskLayout.from_disko(VALID["V4"]).check(boot="uefi") == []


def test_v5_swap_ordering() -> None:
    assert plan("V5") == [
        (1, "ESP", "EF00", "disk-main-ESP"),
        (2, "encryptedSwap", "8200", "disk-main-encryptedSwap"),
        (3, "root", "8300", "disk-main-root"),
        (4, "plainSwap", "8200", "disk-main-plainSwap"),
    ]


def test_v6_long_labels_are_hashed() -> None:
    labels = {p[1]: p[3] for p in plan("V6", LONG)}
    assert labels == {
        "ESP": "36601cdc461d3589a280204a4b674b3cad5d",
        "root": "bf3cfbd77a309f330b322e19e5a8377852b1",
    }


def test_v7_whitespace_and_special_characters() -> None:
    labels = {p[1]: p[3] for p in plan("V7", "vdb")}
    assert labels["name with spaces"] == "disk-vdb-name with spaces"
    assert labels["name^with\\some@special#chars"] == "bda9ca5ea830ae986b7f25657727a441c6d7"


def test_v8_lvm_order_and_sizes() -> None:
    lvs = lv_plan(DiskLayout.from_disko(VALID["V8"]), "pool")
    assert [(v.name, v.priority, v.lvcreate) for v in lvs] == [
        ("aaa", 1000, ("-L", "1M")),
        ("root", 1000, ("-L", "100M")),
        ("zzz", 1000, ("-L", "1M")),
        ("home", 1251, ("-l", "100%FREE")),
    ]


def test_v9_zfs_topology_arguments() -> None:
    args = zpool_vdev_args(DiskLayout.from_disko(VALID["V9"]), "zroot")

    def p(n: str) -> str:
        return f"/dev/disk/by-partlabel/disk-{n}-zfs"

    assert args == [
        p("data1"), "mirror", p("data2"), p("data3"), "spare", p("spare"),
        "log", p("log3"), "mirror", p("log1"), p("log2"),
        "dedup", p("dedup3"), "mirror", p("dedup1"), p("dedup2"),
        "special", p("special3"), "mirror", p("special1"), p("special2"),
        "cache", p("cache"),
    ]  # fmt: skip
    assert len(V9_ZFS_VDEVS_DISKS) == 14


def test_v11_mdadm_members_and_numbers() -> None:
    assert plan("V11", "vdb") == [
        (1, "boot", "EF02", "disk-vdb-boot"),
        (2, "mdadm", "8300", "disk-vdb-mdadm"),
    ]


# -- invalid examples I1-I18 ------------------------------------------------------------------


def one_disk(partitions: dict, **extra: object) -> dict:
    return {"disk": {"main": disk("/dev/sda", partitions)}, **extra}


ROOT = {"root": {"size": "100%", "content": fs("ext4", "/")}}
REFUSED_AT_PARSE = {
    "I1": (one_disk({"root": {"size": "512MiB", "content": fs("ext4", "/")}}), "partitions.root.size"),
    "I3": (one_disk({"esp": {"size": "1G", "type": "ESP"}, **ROOT}), "partitions.esp.type"),
    "I3b": (one_disk({"esp": {"size": "1G", "type": "EF0"}, **ROOT}), "partitions.esp.type"),
    "I4": (
        one_disk({"root": {"size": "100%", "content": fs("ext4", "boot")}}),
        "partitions.root.content.mountpoint",
    ),
    "I5": ({"zpool": {"z": {"type": "zpool", "options": {"ashift": 12}}}}, "zpool.z.options.ashift"),
    "I6": (one_disk({"root": {"size": "100%", "content": {"type": "ext4"}}}), "partitions.root.content"),
    "I6b": (one_disk({"root": {"size": "100%", "content": {"type": "gpt"}}}), "partitions.root.content"),
    "I10": ({"lvm_vg": {"pool": {"lvs": {}}}}, "lvm_vg.pool.type"),
    "I11": (
        one_disk({"root": {"size": "100%", "content": {"type": "luks"}}}),
        "partitions.root.content.name",
    ),
    "I13": (
        one_disk(
            {
                "root": {
                    "size": "100%",
                    "content": {"type": "btrfs", "mountpoint": "/", "swap": {"s": {"size": "2048"}}},
                }
            }
        ),
        "partitions.root.content.swap.s.size",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_AT_PARSE))
def test_invalid_examples_refused_when_read(case: str) -> None:
    data, node = REFUSED_AT_PARSE[case]
    with pytest.raises(DiskoError) as info:
        DiskLayout.from_disko(data)
    assert node in str(info.value)


def zfs_pool(mode: object = "", **kw: object) -> dict:
    return {"type": "zpool", "mode": mode, "datasets": {"root": {"type": "zfs_fs", "mountpoint": "/"}}, **kw}


REFUSED_BY_CHECK = {
    "I2": (one_disk({"a": {"size": "100%", "content": fs("ext4", "/")}, "b": {"size": "100%"}}), None,
           "partitions.b", "second size = 100%"),
    "I7": (one_disk({"zfs": {"size": "100%", "content": {"type": "zfs", "pool": "zrooot"}}}, zpool={"zroot": zfs_pool()}),
           None, "partitions.zfs.content", "'zrooot' names no zpool"),
    "I8": (one_disk({"zfs": {"size": "100%", "content": {"type": "zfs", "pool": "zroot"}}},
                    zpool={"zroot": zfs_pool("mirror")}), None, "zpool.zroot.mode", "mirror needs at least 2"),
    "I9": ({"disk": {"data1": disk("/dev/sdb", {"pool": {"size": "100%", "content": {"type": "zfs", "pool": "zroot"}}})},
            "zpool": {"zroot": zfs_pool({"topology": {"type": "topology", "vdev": [{"members": ["data1"]}]}})}},
           None, "zpool.zroot.mode.topology", "'data1'"),
    "I12": (one_disk(ROOT, nodev={"tmp": {"fsType": "tmpfs"}}), None, "nodev.tmp", "not an absolute path"),
    "I14": (one_disk({"boot": {"start": "0M", "end": "+1G", "content": fs("ext4", "/boot")}, **ROOT}), None,
            "partitions.boot", "sector 0"),
    "I15": (one_disk({"ESP": {"size": "1G", "type": "EF00", "content": fs("vfat", "/boot")}, **ROOT}), "bios",
            "disk.main", "EF02"),
    "I17": (one_disk({"a": {"size": "1G", "content": fs("ext4", "/")}, **ROOT}), None, "partitions.root.content",
            "mountpoint / is also mounted by"),
    "I18": ({"nodev": {"/tmp": {"fsType": "tmpfs"}}}, None, "disk", "no disks are defined"),
    "uefi": (one_disk({"bios": {"size": "1M", "type": "EF02"}, **ROOT}), "uefi", "disk.main", "EF00"),
    "no-root": (one_disk({"zfs": {"size": "100%", "content": {"type": "zfs", "pool": "zroot"}}},
                         zpool={"zroot": {"type": "zpool", "datasets": {"data": {"type": "zfs_fs", "mountpoint": "/d"}}}}),
                None, "disko.devices", "pool zroot has no dataset mounted at /"),
    "ef02-case": (one_disk({"bios": {"size": "1M", "type": "ef02"}, **ROOT}), None, "partitions.bios", '"EF02"'),
    "unknown-code": (one_disk({"x": {"size": "1M", "type": "ABCD"}, **ROOT}), None, "partitions.x", "unknown to sgdisk"),
    "esp-not-vfat": (one_disk({"ESP": {"size": "1G", "type": "EF00", "content": fs("ext4", "/boot")}, **ROOT}), None,
                     "partitions.ESP", "vfat"),
    "no-size": (one_disk({"x": {"content": fs("ext4", "/x")}, **ROOT}), None, "partitions.x", "neither size nor end"),
    "dup-names": (one_disk({"a": {"name": "root", "size": "1G"}, **ROOT}), None, "partitions.root", "also partition"),
    "thinlv": ({**one_disk({"pv": {"size": "100%", "content": {"type": "lvm_pv", "vg": "vg"}}}),
                "lvm_vg": {"vg": {"type": "lvm_vg", "lvs": {"t": {"size": "1G", "lvm_type": "thinlv", "content": fs("ext4", "/")}}}}},
               None, "lvm_vg.vg.lvs.t", "thin-pool"),
    "zvol-size": (one_disk({"zfs": {"size": "100%", "content": {"type": "zfs", "pool": "z"}}},
                           zpool={"z": zfs_pool(datasets={"root": {"type": "zfs_fs", "mountpoint": "/"}, "v": {"type": "zfs_volume"}})}),
                  None, "zpool.z.datasets.v", "needs size"),
    "ask-password": (one_disk({"c": {"size": "100%", "content": {"type": "luks", "name": "c", "content": fs("ext4", "/")}}}),
                     None, "partitions.c.content", "hangs an unattended install"),
    "btrfs-swap": (one_disk({**ROOT, "b": {"size": "1G", "content": {"type": "btrfs", "swap": {"s": {"size": "1G"}}}}}),
                   None, "partitions.b.content", "swap files need a mountpoint"),
    "no-members": (one_disk(ROOT, zpool={"data": zfs_pool()}), None, "zpool.data", "no device is a member"),
    "resume": (one_disk({**ROOT, "s": {"size": "1G", "content": {"type": "swap", "randomEncryption": True, "resumeDevice": True}}}),
               None, "partitions.s.content", "resumeDevice"),
    "after-100": (one_disk({"root": {"size": "100%", "content": fs("ext4", "/")}, "z": {"size": "1G", "priority": 9999}}),
                  None, "partitions.z", "takes the rest of the disk"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED_BY_CHECK))
def test_invalid_examples_refused_by_check_naming_the_node(case: str) -> None:
    data, boot, node, words = REFUSED_BY_CHECK[case]
    problems = DiskLayout.from_disko(data).check(boot=boot)
    assert problems, "no problem found"
    assert any(node in p.path and words in p.message for p in problems), [str(p) for p in problems]


def test_fixed_sizes_that_do_not_fit() -> None:
    layout = DiskLayout.from_disko(one_disk({"big": {"size": "50G", "content": fs("ext4", "/data")}, **ROOT}))
    problems = layout.check(disk_bytes=40 * 10**9)
    assert [p.path for p in problems] == ["disk.main.content.partitions.big"]
    assert "does not fit on the 40 GB disk" in problems[0].message
    assert layout.check(disk_bytes=80 * 10**9) == []
