"""Survivors of `make mutate` in small corners of the core: what the operator is told when their key
is missing or unknown, when a disk name is wrong or a ZeroTier network number is out of range, and
that re-keying a document written with key groups leaves no stale group behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_sdk import sops
from fleet_sdk.disko import DiskLayout
from fleet_sdk.errors import PartitionPlanError, ZeroTierError
from fleet_sdk.sops.tree import KeyEntry, SopsTree
from fleet_sdk.spec.disks.partitions import partition_plan, zpool_vdev_args
from fleet_sdk.zerotier.identity import network_id

from .disko_examples import VALID


def test_no_admin_key_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(sops.NoAdminKeyError) as info:
        SopsTree(tmp_path / "sops").admin([])
    assert str(info.value) == ("no admin age key: run `fleet vars keygen`, or set SOPS_AGE_KEY / SOPS_AGE_KEY_FILE")


def test_an_unregistered_admin_key_is_named_with_the_fix(tmp_path: Path) -> None:
    tree = SopsTree(tmp_path / "sops")
    _, someone = sops.generate()
    tree.write_keys("users", "alice", [KeyEntry(someone)])
    private, public = sops.generate()
    with pytest.raises(sops.NoAdminKeyError) as info:
        tree.admin([private])
    assert str(info.value) == (
        f"your age key ({public}) is not the key of any user in {tree.root / 'users'}; "
        "run `fleet vars keygen` to register it"
    )


def test_an_unknown_disk_lists_the_disks() -> None:
    layout = DiskLayout.from_disko(VALID["V8"])
    with pytest.raises(PartitionPlanError) as info:
        partition_plan(layout, "nvme9", 10 * 1024**3)
    assert [str(p) for p in info.value.problems] == ["disk.nvme9: no such disk; disks are main"]


def test_zpool_arguments_keep_device_paths_and_take_one_special_vdev() -> None:
    spec = json.loads(json.dumps(VALID["V9"]))
    topology = spec["zpool"]["zroot"]["mode"]["topology"]
    topology["cache"] = ["/dev/disk/by-partlabel/disk-cache-zfs"]
    topology["special"] = {"mode": "mirror", "members": ["special1", "special2"]}
    args = zpool_vdev_args(DiskLayout.from_disko(spec), "zroot")
    assert args[-2:] == ["cache", "/dev/disk/by-partlabel/disk-cache-zfs"]
    i = args.index("special")
    assert args[i : i + 4] == [
        "special",
        "mirror",
        "/dev/disk/by-partlabel/disk-special1-zfs",
        "/dev/disk/by-partlabel/disk-special2-zfs",
    ]


def test_network_numbers_are_24_bits_and_never_0() -> None:
    controller = "8056c2e21c"
    assert network_id(controller, 1) == "8056c2e21c000001"
    assert network_id(controller, (1 << 24) - 1) == "8056c2e21cffffff"
    for number in (0, 1 << 24, -1):
        with pytest.raises(ZeroTierError, match=f"network number {number} is not between 1 and 0xffffff"):
            network_id(controller, number)
    random = network_id(controller)
    assert random.startswith(controller) and int(random[10:], 16) != 0


def test_rekey_of_a_key_group_document_writes_plain_age_entries() -> None:
    private, public = sops.generate()
    _, other = sops.generate()
    doc = json.loads(sops.encrypt(b"grouped", [public]))
    doc["sops"]["key_groups"] = [{"age": doc["sops"].pop("age")}]
    rekeyed = json.loads(sops.rekey(json.dumps(doc), [private], [public, other]))
    assert "key_groups" not in rekeyed["sops"]
    assert [e["recipient"] for e in rekeyed["sops"]["age"]] == [public, other]
    assert sops.decrypt(json.dumps(rekeyed), [private]) == b"grouped"
