"""The exact words a user reads for a damaged key.json and for disk layouts disko or NixOS would
refuse: each names the file or node and says what to do (survivors of `make mutate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet_sdk.disko import DiskLayout
from fleet_sdk.errors import SopsError
from fleet_sdk.sops.tree import SopsTree, read_key_json


def _raised(path: Path) -> str:
    with pytest.raises(SopsError) as info:
        read_key_json(path)
    return str(info.value)


def test_each_way_a_key_json_is_damaged_is_named(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.mkdir()
    assert _raised(key) == f"{key}: is a folder; it should be the member's key file, as clan writes it"
    key.rmdir()
    key.write_bytes(b'["\xff"]')
    assert _raised(key) == f"{key}: not UTF-8 text; restore it from git or re-add the member"
    entry = {"type": "age", "comment": "x" * 80}
    key.write_text(json.dumps([entry]))
    assert _raised(key) == (
        f'{key}: expected [{{"publickey": "age1…", "type": "age"}}], got an entry '
        f"{json.dumps(entry)[:60]} without a publickey string"
    )


def test_a_machine_key_that_cannot_be_opened_names_its_file(tmp_path: Path) -> None:
    from fleet_sdk import sops
    from fleet_sdk.sops.tree import KeyEntry

    tree = SopsTree(tmp_path)
    private, _ = sops.generate()  # someone else's key
    admin_private, admin_public = sops.generate()
    tree.write_keys("users", "admin", [KeyEntry(admin_public)])
    tree.ensure_machine_keys(["web"], [admin_private])
    # the machine's keys are read fresh after they were created (no stale cache)
    assert len(tree.keys_of("machines", "web")) == 1
    with pytest.raises(SopsError) as info:
        tree.machine_private_key("web", [private])
    assert str(info.value).startswith("sops/secrets/web-age.key/secret: ")


def _problems(devices: dict[str, Any], boot: str | None = None) -> list[str]:
    return [str(p) for p in DiskLayout.from_disko({"disko": {"devices": devices}}).check(boot=boot)]


ESP = {"size": "512M", "type": "EF00", "content": {"type": "filesystem", "format": "vfat", "mountpoint": "/boot"}}
ROOT = {"size": "100%", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"}}


def _disk(partitions: dict[str, Any]) -> dict[str, Any]:
    return {
        "disk": {"main": {"type": "disk", "device": "/dev/sda", "content": {"type": "gpt", "partitions": partitions}}}
    }


def test_an_esp_without_vfat_is_named() -> None:
    bad = {**ESP, "content": {**ESP["content"], "format": "ext4"}}
    assert "disk.main.content.partitions.ESP: an EF00 (EFI system) partition needs a vfat filesystem" in _problems(
        _disk({"ESP": bad, "root": ROOT})
    )


def test_uefi_without_an_esp_is_named() -> None:
    problems = _problems(_disk({"root": ROOT}), boot="uefi")
    assert any('this host boots UEFI: it needs an EFI system partition (type "EF00", vfat, ' in p for p in problems)


def test_nothing_mounted_at_root_is_a_layout_problem() -> None:
    data = {"size": "100%", "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/data"}}
    assert "disko.devices: nothing is mounted at /" in _problems(_disk({"ESP": ESP, "data": data}))


def test_a_canmount_off_dataset_mounts_nothing() -> None:
    devices = {
        **_disk({"ESP": ESP, "zfs": {"size": "100%", "content": {"type": "zfs", "pool": "rpool"}}}),
        "zpool": {
            "rpool": {
                "type": "zpool",
                "rootFsOptions": {"canmount": "off"},
                "mountpoint": "/",
                "datasets": {"root": {"type": "zfs_fs", "mountpoint": "/"}},
            }
        },
    }
    # the pool's own mountpoint does not count (canmount=off), so / is mounted once, not twice
    assert not any("also mounted" in p for p in _problems(devices))


def test_the_reserved_root_dataset_name_is_refused() -> None:
    devices = {
        **_disk({"ESP": ESP, "zfs": {"size": "100%", "content": {"type": "zfs", "pool": "rpool"}}}),
        "zpool": {"rpool": {"type": "zpool", "datasets": {"__root": {"type": "zfs_fs", "mountpoint": "/"}}}},
    }
    assert "zpool.rpool.datasets.__root: the dataset name __root is reserved by disko" in _problems(devices)


def test_resume_on_random_encryption_is_refused() -> None:
    swap = {"size": "1G", "content": {"type": "swap", "randomEncryption": True, "resumeDevice": True}}
    assert any(
        p.endswith("resumeDevice cannot work with randomEncryption (the key is new each boot)")
        for p in _problems(_disk({"ESP": ESP, "swap": swap, "root": ROOT}))
    )


def test_the_legacy_table_type_is_named() -> None:
    legacy = {
        "disk": {
            "main": {
                "type": "disk",
                "device": "/dev/sda",
                "content": {"type": "table", "format": "gpt", "partitions": []},
            }
        }
    }
    try:
        problems = _problems(legacy)
    except Exception:  # a model that refuses `table` outright also names it
        return
    assert any("the legacy `table` type is deprecated by disko; use type = gpt" in p for p in problems)
