"""GPT labels are how disko (and the boot) find partitions: equal labels on one machine collide."""

from __future__ import annotations

from typing import Any

from fleet_sdk.disko import DiskLayout


def disk(device: str, partitions: dict[str, Any]) -> dict[str, Any]:
    return {"device": device, "content": {"type": "gpt", "partitions": partitions}}


def ext4(mountpoint: str, **extra: Any) -> dict[str, Any]:
    return {"size": "100%", **extra, "content": {"type": "filesystem", "format": "ext4", "mountpoint": mountpoint}}


def test_equal_explicit_labels_on_two_disks_are_refused_naming_both() -> None:
    layout = DiskLayout.from_disko(
        {
            "disk": {
                "a": disk("/dev/sda", {"root": ext4("/", label="data")}),
                "b": disk("/dev/sdb", {"x": ext4("/srv", label="data")}),
            }
        }
    )
    assert [(p.path, p.message) for p in layout.check()] == [
        (
            "disk.b.content.partitions.x",
            "its GPT label 'data' is also disk.a.content.partitions.root's; disko finds partitions by label, "
            "so one would be used for the other: give them distinct labels",
        )
    ]


def test_default_labels_can_collide_too() -> None:
    # disk "a-b" partition "c" and disk "a" partition "b-c" both get the label disk-a-b-c
    layout = DiskLayout.from_disko(
        {"disk": {"a-b": disk("/dev/sda", {"c": ext4("/")}), "a": disk("/dev/sdb", {"b-c": ext4("/srv")})}}
    )
    problems = layout.check()
    assert len(problems) == 1 and "'disk-a-b-c'" in problems[0].message


def test_distinct_labels_pass() -> None:
    layout = DiskLayout.from_disko(
        {"disk": {"a": disk("/dev/sda", {"root": ext4("/")}), "b": disk("/dev/sdb", {"root": ext4("/srv")})}}
    )
    assert layout.check() == []
