"""The valid examples of reference/disko.md §11 (disko's example/*.nix) as disko.devices data."""

from __future__ import annotations

from typing import Any


def disk(device: str, partitions: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": "disk",
        "device": device,
        "content": {"type": "gpt", "partitions": partitions},
    }
    if name:
        d["name"] = name
    return d


def fs(fmt: str, mountpoint: str, **kw: Any) -> dict[str, Any]:
    return {"type": "filesystem", "format": fmt, "mountpoint": mountpoint, **kw}


def esp(size: str) -> dict[str, Any]:
    """The EFI system partition of disko's examples: vfat at /boot, umask=0077."""
    return {"size": size, "type": "EF00", "content": fs("vfat", "/boot", mountOptions=["umask=0077"])}


V4_HYBRID = {
    "disk": {
        "main": disk(
            "/dev/disk/by-id/some-disk-id",
            {
                "boot": {"size": "1M", "type": "EF02"},
                "ESP": esp("512M"),
                "root": {"size": "100%", "content": fs("ext4", "/")},
            },
        )
    }
}

V5_SWAP = {
    "disk": {
        "main": disk(
            "/dev/disk/by-id/some-disk-id",
            {
                "ESP": esp("500M"),
                "root": {"end": "-1G", "content": fs("ext4", "/")},
                "encryptedSwap": {
                    "size": "10M",
                    "content": {"type": "swap", "randomEncryption": True, "priority": 100},
                },
                "plainSwap": {
                    "size": "100%",
                    "content": {"type": "swap", "discardPolicy": "both", "resumeDevice": True},
                },
            },
        )
    }
}

LONG = "this-is-some-super-long-name-to-test-what-happens-when-the-name-is-too-long"
V6_LONG_NAME = {
    "disk": {
        LONG: disk(
            "/dev/disk/by-id/some-disk-id",
            {
                "ESP": esp("500M"),
                "root": {"size": "100%", "content": fs("ext4", "/")},
            },
        )
    }
}

V7_WHITESPACE = {
    "disk": {
        "vdb": disk(
            "/dev/vdb",
            {
                "ESP": esp("100M"),
                "name with spaces": {"size": "100M", "content": fs("ext4", "/name with spaces")},
                "name^with\\some@special#chars": {"size": "100M", "content": fs("ext4", "/special-chars")},
                "root": {"size": "100%", "content": fs("ext4", "/")},
            },
        )
    }
}

V8_LVM_SIZES = {
    "disk": {
        "main": disk(
            "/dev/disk/by-id/some-disk-id",
            {
                "ESP": esp("500M"),
                "primary": {"size": "100%", "content": {"type": "lvm_pv", "vg": "pool"}},
            },
        )
    },
    "lvm_vg": {
        "pool": {
            "type": "lvm_vg",
            "lvs": {
                "aaa": {"size": "1M"},
                "zzz": {"size": "1M"},
                "root": {"size": "100M", "content": fs("ext4", "/", mountOptions=["defaults"])},
                "home": {"size": "100%FREE", "content": fs("ext4", "/home")},
            },
        }
    },
}


def _zfs_disk(name: str) -> dict[str, Any]:
    return disk(f"/dev/disk/by-id/{name}", {"zfs": {"size": "100%", "content": {"type": "zfs", "pool": "zroot"}}})


V9_ZFS_VDEVS_DISKS = [
    "data1",
    "data2",
    "data3",
    "spare",
    "log1",
    "log2",
    "log3",
    "dedup1",
    "dedup2",
    "dedup3",
    "special1",
    "special2",
    "special3",
    "cache",
]
V9_ZFS_VDEVS = {
    "disk": {
        "boot": disk(
            "/dev/disk/by-id/boot-disk",
            {
                "ESP": esp("500M"),
                "root": {"size": "100%", "content": fs("ext4", "/")},
            },
        ),
        **{n: _zfs_disk(n) for n in V9_ZFS_VDEVS_DISKS},
    },
    "zpool": {
        "zroot": {
            "type": "zpool",
            "mode": {
                "topology": {
                    "type": "topology",
                    "vdev": [{"mode": "mirror", "members": ["data2", "data3"]}, {"members": ["data1"]}],
                    "spare": ["spare"],
                    "log": [{"mode": "mirror", "members": ["log1", "log2"]}, {"members": ["log3"]}],
                    "dedup": [{"mode": "mirror", "members": ["dedup1", "dedup2"]}, {"members": ["dedup3"]}],
                    "special": [
                        {"mode": "mirror", "members": ["special1", "special2"]},
                        {"members": ["special3"]},
                    ],
                    "cache": ["cache"],
                }
            },
            "datasets": {"data": {"type": "zfs_fs", "mountpoint": "/data"}},
        }
    },
}

V10_TMPFS = {
    "disk": {
        "main": disk(
            "/dev/disk/by-id/some-disk-id",
            {
                "ESP": esp("500M"),
                "root": {"size": "100%", "content": fs("ext4", "/")},
            },
        )
    },
    "nodev": {"/tmp": {"fsType": "tmpfs", "mountOptions": ["size=200M"]}},
}


def _md_disk(device: str) -> dict[str, Any]:
    return disk(
        device,
        {
            "boot": {"size": "1M", "type": "EF02"},
            "mdadm": {"size": "100%", "content": {"type": "mdraid", "name": "raid1"}},
        },
    )


V11_MDADM = {
    "disk": {"vdb": _md_disk("/dev/vdb"), "vdc": _md_disk("/dev/vdc")},
    "mdadm": {
        "raid1": {
            "type": "mdadm",
            "level": 1,
            "content": {
                "type": "gpt",
                "partitions": {"primary": {"size": "100%", "content": fs("ext4", "/")}},
            },
        }
    },
}

V12_BTRFS = {
    "disk": {
        "main": disk(
            "/dev/disk/by-id/some-disk-id",
            {
                "ESP": {
                    "priority": 1,
                    "name": "ESP",
                    "start": "1M",
                    "end": "128M",
                    "type": "EF00",
                    "content": fs("vfat", "/boot", mountOptions=["umask=0077"]),
                },
                "root": {
                    "size": "100%",
                    "content": {
                        "type": "btrfs",
                        "extraArgs": ["-f"],
                        "mountpoint": "/partition-root",
                        "swap": {"swapfile": {"size": "20M"}, "swapfile1": {"size": "20M"}},
                        "subvolumes": {
                            "/rootfs": {"mountpoint": "/"},
                            "/home": {"mountOptions": ["compress=zstd"], "mountpoint": "/home"},
                            "/home/user": {},
                            "/nix": {"mountOptions": ["compress=zstd", "noatime"], "mountpoint": "/nix"},
                            "/test": {},
                            "/swap": {
                                "mountpoint": "/.swapvol",
                                "swap": {
                                    "swapfile": {"size": "20M"},
                                    "rel-path": {"size": "20M", "path": "rel-path"},
                                },
                            },
                        },
                    },
                },
            },
        )
    }
}

VALID = {
    "V4": V4_HYBRID,
    "V5": V5_SWAP,
    "V6": V6_LONG_NAME,
    "V7": V7_WHITESPACE,
    "V8": V8_LVM_SIZES,
    "V9": V9_ZFS_VDEVS,
    "V10": V10_TMPFS,
    "V11": V11_MDADM,
    "V12": V12_BTRFS,
}
