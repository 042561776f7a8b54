"""Hypothesis strategies for disko layouts (reference/disko.md §2-4).

- `gpt_tables()`: one disk's gpt partitions as disko data plus a disk size, for comparing the
  partition plan with real sgdisk: sizes with and without units, "100%", EF02/EF00, explicit sector
  starts and ends, ends counted from the disk's end, priorities and alignments.
- `layouts()`: whole `disko.devices` that parse and pass `check()`: disks with gpt partitions (or a
  bare content) holding filesystem, swap, zfs, luks, lvm_pv, mdraid, btrfs (with subvolumes and
  swap files) or bcachefs, and the zpool / lvm_vg / mdadm / bcachefs_filesystems their members name,
  plus nodev mounts. Optional options are set in random subsets, sometimes to their default values
  or to null, so that `exclude_unset` rendering is exercised.
- `node_paths(devices)`: every node of `disko.devices` data with its path, type and slot, for mutations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

SECTOR = 512
MIB = 1024**2
# GPT type codes sgdisk knows (it reports them in upper case); the BIOS boot and ESP codes first
TYPE_CODES = ("EF02", "EF00", "8300", "8200", "BF00", "8E00", "FD00", "8309", "ef00", "bf01")
LINUX_FS_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
# keys: plain, with spaces and non-ASCII (labels keep them), long enough to be hashed (> 36 bytes)
KEY_ALPHABET = "abcxyzESP019-_ ü"

# -- one gpt table for sgdisk ------------------------------------------------------------------


def gpt_sizes(full: bool = True) -> st.SearchStrategy[str]:
    """disko partition sizes: "100%" or digits with an optional K/M/G unit (no unit: sectors)."""
    return st.one_of(
        st.just("100%") if full else st.nothing(),
        st.integers(1, 65536).map(lambda n: f"{n}K"),
        st.integers(1, 600).map(lambda n: f"{n}M"),
        st.integers(1, 2).map(lambda n: f"{n}G"),
        st.integers(1, 200_000).map(str),
    )


@st.composite
def gpt_partition(draw: st.DrawFn, disk_sectors: int) -> dict[str, Any]:
    p: dict[str, Any] = {}
    shape = draw(st.sampled_from(["size", "size", "size", "start+size", "start+end", "end"]))
    if shape in ("size", "start+size"):
        # ends counted from the disk's end ("-0" of a "100%" size, "-1G") only with the default start:
        # after an explicit start the plan counts them from the wrong free block (a known bug pinned
        # in test_disko_sgdisk.KNOWN_BUGS)
        p["size"] = draw(gpt_sizes(full=shape == "size"))
    if shape in ("start+size", "start+end"):
        start = draw(st.integers(34, min(disk_sectors, 256 * MIB // SECTOR)))
        p["start"] = f"{start}s"
        if shape == "start+end":  # mostly after the start, sometimes anywhere (sgdisk refuses those)
            end = draw(st.integers(start, start + 400_000) | st.integers(0, disk_sectors + 100))
            p["end"] = f"{end}s"
    if shape == "end":
        # counted back from the end of the disk, as disko's example/swap.nix does ("-1G")
        p["end"] = draw(st.sampled_from(["-0", "-1M", "-100M", "-1G", "-4096s", "-1000s", "-3K", "-1"]))
    if draw(st.booleans()):
        p["type"] = draw(st.sampled_from([*TYPE_CODES, LINUX_FS_GUID]))
    if draw(st.integers(0, 3)) == 0:
        p["priority"] = draw(st.integers(0, 10_000))
    if draw(st.integers(0, 5)) == 0:
        p["alignment"] = draw(st.sampled_from([1, 8, 2048, 4096]))
    if draw(st.integers(0, 4)) == 0:
        p["content"] = {"type": "swap"}  # the default type code of a swap partition is 8200
    return p


@st.composite
def gpt_tables(draw: st.DrawFn, max_partitions: int = 4) -> tuple[dict[str, Any], int]:
    """(disk.<name> data of a disk with a gpt, disk size in bytes)."""
    disk_sectors = draw(
        st.one_of(
            st.integers(16 * MIB // SECTOR, 3 * 1024 * MIB // SECTOR),
            # the prod disks (below the 300 GB from which sgdisk never aligns to fewer than 8 sectors)
            st.sampled_from([100 * 10**9 // SECTOR, 160 * 10**9 // SECTOR]),
        )
    )
    keys = draw(
        st.lists(
            st.text(KEY_ALPHABET, min_size=1, max_size=8) | st.just("a-partition-key-longer-than-36-bytes"),
            min_size=1,
            max_size=max_partitions,
            unique=True,
        )
    )
    partitions = {key: draw(gpt_partition(disk_sectors)) for key in keys}
    disk = {"type": "disk", "device": "/dev/vdz", "content": {"type": "gpt", "partitions": partitions}}
    return disk, disk_sectors * SECTOR


# -- whole layouts -------------------------------------------------------------------------------

# user keys: short words with odd characters, and words that are also disko's type tags or option
# names (node paths must still name them; "str" is left out, a known bug drops it from node paths)
TRICKY_KEYS = ("zfs", "gpt", "content", "filesystem", "luks", "type", "name", "datasets", "partitions", "swap")
KEY = st.text("abcxyz019-_ .ü@", min_size=1, max_size=8) | st.sampled_from(TRICKY_KEYS)
# free text (hooks, arguments, labels): any text but surrogates and control characters (Nix strings
# cannot hold NUL, a known bug pinned in test_disko_nix), with quotes, `${`, newlines and tabs
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t"), max_size=12)
ARGS = st.lists(TEXT, max_size=3)
MOUNT_OPTIONS = st.one_of(
    st.just(["defaults"]),
    st.lists(st.sampled_from(["noatime", "umask=0077", "compress=zstd", "size=2G", "x-systemd.automount"]), max_size=3),
)
FORMATS = ("ext4", "xfs", "vfat", "btrfs", "f2fs", "ext2")
SIZES = ("1M", "512M", "1G", "20G", "4096K", "100", "2T")
GUIDS = ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
HOOKS = ("preCreateHook", "postCreateHook", "preMountHook", "postMountHook", "preUnmountHook", "postUnmountHook")
LEAF_CONTENTS = ("filesystem", "swap", "btrfs", "luks", None)
PARTITION_CONTENTS = ("filesystem", "swap", "zfs", "luks", "lvm_pv", "mdraid", "btrfs", "bcachefs", None)
MIN_MEMBERS = {"": 1, "mirror": 2, "raidz": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}


class _Builder:
    """Draws one layout; remembers used mountpoints and the aggregates that members name."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.labels: set[str] = set()  # GPT labels drawn so far: a valid layout has each once
        self.mounts: set[str] = set()
        self.members: dict[str, dict[str, int]] = {"zpool": {}, "lvm_vg": {}, "mdadm": {}, "bcachefs_filesystems": {}}
        self.luks_names: set[str] = set()

    # -- helpers --------------------------------------------------------------------------------

    def coin(self, chance: int = 2) -> bool:
        """True with probability 1/chance."""
        return self.draw(st.integers(0, chance - 1)) == 0

    def some(self, node: dict[str, Any], options: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
        """Set a random subset of `options` on `node` (values may equal disko's defaults)."""
        for name, strategy in options.items():
            if self.coin():
                node[name] = self.draw(strategy)
        return node

    def hooks(self, node: dict[str, Any]) -> dict[str, Any]:
        if self.coin(4):
            node[self.draw(st.sampled_from(HOOKS))] = self.draw(TEXT)
        return node

    def mountpoint(self, root: bool = True) -> str:
        """A mountpoint no other node has; "/" (if `root`) first when it is still free."""
        if root and "/" not in self.mounts and self.coin():
            path = "/"
        else:
            path = self.draw(
                st.text("abcxyz019-_ .ü", min_size=1, max_size=10)
                .map(lambda s: "/" + s)
                .filter(lambda p: p not in self.mounts)
            )
        self.mounts.add(path)
        return path

    def maybe_mountpoint(self, node: dict[str, Any], root: bool = True) -> dict[str, Any]:
        choice = self.draw(st.integers(0, 3))
        if choice < 2:
            node["mountpoint"] = self.mountpoint(root)
        elif choice == 2:
            node["mountpoint"] = None  # explicitly unmounted (disko's default)
        return node

    def reference(self, collection: str, names: tuple[str, ...]) -> str:
        name = self.draw(st.sampled_from(names))
        self.members[collection][name] = self.members[collection].get(name, 0) + 1
        return name

    # -- content nodes --------------------------------------------------------------------------

    def content(self, kind: str | None, depth: int = 0) -> dict[str, Any] | None:
        if kind is None:
            return None
        node: dict[str, Any] = {"type": kind}
        self.hooks(node)
        if kind == "filesystem":
            node["format"] = self.draw(st.sampled_from(FORMATS))
            self.some(node, {"extraArgs": ARGS, "mountOptions": MOUNT_OPTIONS})
            self.maybe_mountpoint(node)
        elif kind == "swap":
            self.some(
                node,
                {
                    "discardPolicy": st.sampled_from([None, "once", "pages", "both"]),
                    "extraArgs": ARGS,
                    "mountOptions": st.lists(st.sampled_from(["defaults", "nofail", "sw"]), min_size=1, max_size=2),
                    "priority": st.none() | st.integers(-1, 32767),
                    "randomEncryption": st.booleans(),
                },
            )
            if not node.get("randomEncryption") and self.coin():
                node["resumeDevice"] = self.draw(st.booleans())
        elif kind == "zfs":
            node["pool"] = self.reference("zpool", ("zroot", "tank", "z pool"))
        elif kind == "lvm_pv":
            node["vg"] = self.reference("lvm_vg", ("pool", "vg0"))
        elif kind == "mdraid":
            node["name"] = self.reference("mdadm", ("raid1", "md0"))
        elif kind == "bcachefs":
            node["filesystem"] = self.reference("bcachefs_filesystems", ("bfs",))
            self.some(node, {"label": st.sampled_from(["", "ssd.fast", "hdd.slow"]), "extraFormatArgs": ARGS})
        elif kind == "btrfs":
            self.btrfs(node)
        elif kind == "luks":
            self.luks(node, depth)
        elif kind == "gpt":
            self.gpt(node, depth)
        if self.coin(12):
            node["device"] = "/dev/disk/by-id/override"
        return node

    def swapfiles(self) -> dict[str, Any]:
        files: dict[str, Any] = {}
        for key in self.draw(st.lists(KEY, max_size=2, unique=True)):
            files[key] = self.some(
                {"size": self.draw(st.sampled_from(["20M", "2G", "512K"]))},
                {
                    "path": st.sampled_from(["rel-path", "swap/file"]),
                    "priority": st.none() | st.integers(0, 100),
                    "options": st.lists(st.sampled_from(["defaults", "discard"]), min_size=1, max_size=2),
                },
            )
        return files

    def btrfs(self, node: dict[str, Any]) -> None:
        self.some(node, {"extraArgs": st.just(["-f"]) | ARGS, "mountOptions": MOUNT_OPTIONS})
        self.maybe_mountpoint(node)
        if node.get("mountpoint") and self.coin(3):
            node["swap"] = self.swapfiles()  # swap files need a mountpoint to live under
        subvolumes: dict[str, Any] = {}
        for key in self.draw(st.lists(KEY.map(lambda k: "/" + k) | KEY, max_size=3, unique=True)):
            sub = self.hooks({})
            self.some(
                sub,
                {
                    "type": st.just("btrfs_subvol"),
                    "name": st.sampled_from(["@home", "/nested/name"]),
                    "extraArgs": ARGS,
                    "mountOptions": MOUNT_OPTIONS,
                },
            )
            self.maybe_mountpoint(sub)
            if sub.get("mountpoint") and self.coin(4):
                sub["swap"] = self.swapfiles()
            subvolumes[key] = sub
        if subvolumes or self.coin():
            node["subvolumes"] = subvolumes

    def luks(self, node: dict[str, Any], depth: int) -> None:
        node["name"] = self.draw(KEY.filter(lambda n: n not in self.luks_names))
        self.luks_names.add(node["name"])
        # never a password prompt: one of the unattended key sources (or askPassword = false)
        source = self.draw(st.sampled_from(["passwordFile", "settings.keyFile", "keyFile", "askPassword", "fido2"]))
        settings: dict[str, Any] = {}
        if source == "passwordFile":
            node["passwordFile"] = "/run/partitioning-secrets/luks/key"
        elif source == "settings.keyFile":
            settings["keyFile"] = "/dev/disk/by-partlabel/key"
        elif source == "keyFile":
            node["keyFile"] = "/tmp/secret.key"
        elif source == "askPassword":
            node["askPassword"] = False
        else:
            node["enrollFido2"] = True
        if self.coin():
            settings.update(
                self.draw(
                    st.dictionaries(
                        st.sampled_from(["allowDiscards", "bypassWorkqueues", "keyFileSize", "crypttabExtraOpts"]),
                        st.booleans() | st.integers(0, 4096) | st.lists(st.sampled_from(["tpm2-device=auto"])),
                        max_size=2,
                    )
                )
            )
        if settings or self.coin(3):
            node["settings"] = settings
        self.some(
            node,
            {
                "additionalKeyFiles": st.lists(st.just("/run/partitioning-secrets/extra.key"), max_size=1),
                "extraFormatArgs": st.just(["--pbkdf argon2id"]) | ARGS,
                "extraOpenArgs": ARGS,
                "initrdUnlock": st.booleans(),
                "extraFido2EnrollArgs": ARGS,
                "enrollRecovery": st.booleans(),
            },
        )
        if depth >= 2:  # inside an aggregate (or deeper): no new members, so no cycles
            inner: tuple[str | None, ...] = ("filesystem", "swap", "btrfs", None)
        else:
            inner = ("filesystem", "swap", "zfs", "lvm_pv", "btrfs", None) + (("gpt",) if depth == 0 else ())
        node["content"] = self.content(self.draw(st.sampled_from(inner)), depth + 1)

    def gpt(self, node: dict[str, Any], depth: int, contents: tuple[str | None, ...] = PARTITION_CONTENTS) -> None:
        if self.coin(4):
            node["efiGptPartitionFirst"] = self.draw(st.booleans())
        keys = self.draw(st.lists(KEY, min_size=1, max_size=4, unique=True))
        full = self.draw(st.sampled_from([None, *keys]))  # at most one "100%" partition
        names: set[str] = set()
        partitions: dict[str, Any] = {}
        for key in keys:
            part: dict[str, Any] = self.hooks({})
            if key == full:
                part["size"] = "100%"
                if self.coin(4):
                    part["priority"] = self.draw(st.integers(9001, 10_000))  # still created last
            elif self.coin(6):
                part["end"] = self.draw(st.sampled_from(["-1G", "-512M"]))  # room left after the 100% one
            else:
                part["size"] = self.draw(st.sampled_from(SIZES))
                if self.coin(4):
                    part["priority"] = self.draw(st.integers(0, 9000))
            kind = self.draw(st.sampled_from(contents if depth < 2 else LEAF_CONTENTS))
            code = self.draw(st.sampled_from([None, "EF02", "EF00", "ef00", "8300", "8200", "BF00", "FD00", *GUIDS]))
            if code is not None and code.upper() == "EF00":
                kind = "filesystem"
            if code is not None:
                part["type"] = code
            content = self.content(kind, depth + 1)
            if code is not None and code.upper() == "EF00":
                assert content is not None
                content["format"] = "vfat"
            if content is not None or self.coin(4):
                part["content"] = content
            name = key + "-n"
            if self.coin(4) and name not in keys and name not in names:
                part["name"] = name
            names.add(part.get("name", key))
            self.some(
                part,
                {
                    "start": st.just("0"),
                    "alignment": st.sampled_from([0, 1, 2048]),
                    "label": TEXT.filter(lambda t: len(t.encode()) <= 36),
                    "uuid": st.none() | st.sampled_from(GUIDS).map(str.upper),
                    "attributes": st.lists(st.integers(0, 63), max_size=3),
                }
                if self.coin(3)
                else {},
            )
            if "label" in part and (part["label"] in self.labels or part["label"].startswith("disk-")):
                del part["label"]  # equal labels collide (and disk-… could equal a default label)
            elif "label" in part:
                self.labels.add(part["label"])
            if self.coin(10):
                part["hybrid"] = self.some({}, {"mbrPartitionType": st.just("0x0c"), "mbrBootableFlag": st.booleans()})
            partitions[key] = part
        node["partitions"] = partitions

    # -- top-level devices ----------------------------------------------------------------------

    def disk(self, index: int) -> dict[str, Any]:
        node = self.hooks({"device": f"/dev/disk/by-id/disk-{index}"})
        self.some(
            node,
            {
                "type": st.just("disk"),
                "name": st.sampled_from([f"d{index}", f"disk {index}"]),
                "destroy": st.booleans(),
                "imageName": st.just(f"image-{index}"),
                "imageSize": st.sampled_from(["2G", "100"]),
            },
        )
        kind = self.draw(st.sampled_from(["gpt", "gpt", "gpt", *PARTITION_CONTENTS]))
        if kind is not None or self.coin():
            node["content"] = self.content(kind)
        return node

    def leaf_or_gpt(self) -> dict[str, Any] | None:
        kind = self.draw(st.sampled_from([*LEAF_CONTENTS, "gpt"]))
        if kind == "gpt":
            node: dict[str, Any] = {"type": "gpt"}
            self.gpt(node, 1, LEAF_CONTENTS)
            return node
        return self.content(kind, 2)

    def zpool(self, name: str, members: int) -> dict[str, Any]:
        node = self.hooks({})
        modes = [m for m, need in MIN_MEMBERS.items() if members >= need]
        self.some(
            node,
            {
                "type": st.just("zpool"),
                "name": st.just(name),
                "mode": st.sampled_from(modes),
                "options": st.dictionaries(st.sampled_from(["ashift", "autotrim"]), st.sampled_from(["12", "on"])),
                "mountOptions": MOUNT_OPTIONS,
            },
        )
        root_fs = self.draw(
            st.dictionaries(st.sampled_from(["compression", "com.sun:auto-snapshot", "xattr"]), st.just("on"))
        )
        if self.coin(3):
            root_fs["canmount"] = "off"  # then the pool's own mountpoint is not mounted
        else:
            self.maybe_mountpoint(node)
        if root_fs or self.coin(3):
            node["rootFsOptions"] = root_fs
        datasets: dict[str, Any] = {}
        for key in self.draw(st.lists(KEY | st.sampled_from(["root/nixos", "root/home"]), max_size=3, unique=True)):
            ds: dict[str, Any] = self.hooks({"type": self.draw(st.sampled_from(["zfs_fs", "zfs_fs", "zfs_volume"]))})
            options = self.draw(
                st.dictionaries(st.sampled_from(["atime", "recordsize"]), st.sampled_from(["off", "1M"]))
            )
            if ds["type"] == "zfs_fs":
                self.maybe_mountpoint(ds)
                if ds.get("mountpoint"):
                    if self.coin(3):
                        options["mountpoint"] = self.draw(st.sampled_from(["legacy", ds["mountpoint"]]))
                elif self.coin(3):
                    options["mountpoint"] = "none"
            else:
                ds["size"] = self.draw(st.sampled_from(["8G", "100M"]))
                self.some(ds, {"extraArgs": ARGS})
                ds["content"] = self.content(self.draw(st.sampled_from(["filesystem", "swap", None])), 2)
            if options or self.coin(3):
                ds["options"] = options
            self.some(ds, {"name": st.just(key.upper() or "x"), "mountOptions": MOUNT_OPTIONS})
            datasets[key] = ds
        if datasets or self.coin():
            node["datasets"] = datasets
        return node

    def lvm_vg(self, name: str) -> dict[str, Any]:
        node: dict[str, Any] = self.hooks({"type": "lvm_vg"})
        self.some(node, {"name": st.just(name)})
        lvs: dict[str, Any] = {}
        thin_pool = None
        for key in self.draw(st.lists(KEY, max_size=3, unique=True)):
            lv: dict[str, Any] = self.hooks({"size": self.draw(st.sampled_from(["10G", "100%FREE", "50%", "1M"]))})
            lvm_type = self.draw(st.sampled_from([None, "mirror", "raid1", "thin-pool", "thinlv"]))
            if lvm_type == "thinlv" and thin_pool is None:
                lvm_type = "thin-pool"
            if lvm_type == "thin-pool":
                thin_pool = key
            elif lvm_type == "thinlv":
                lv["pool"] = thin_pool
            if lvm_type is not None or self.coin(4):
                lv["lvm_type"] = lvm_type
            self.some(
                lv,
                {"type": st.just("lvm_lv"), "extraArgs": ARGS, "priority": st.integers(0, 2000)},
            )
            if lvm_type != "thin-pool":
                lv["content"] = self.content(self.draw(st.sampled_from(LEAF_CONTENTS)), 2)
            lvs[key] = lv
        if lvs or self.coin():
            node["lvs"] = lvs
        return node

    def mdadm(self, name: str) -> dict[str, Any]:
        node = self.hooks({})
        self.some(
            node,
            {
                "type": st.just("mdadm"),
                "name": st.just(name),
                "level": st.sampled_from([0, 1, 5, 10]),
                "metadata": st.sampled_from(["1", "1.0", "1.1", "1.2", "default"]),
                "extraArgs": ARGS,
            },
        )
        node["content"] = self.leaf_or_gpt()
        return node

    def bcachefs_filesystem(self) -> dict[str, Any]:
        node: dict[str, Any] = self.hooks({"type": "bcachefs_filesystem"})
        self.some(
            node,
            {
                "extraFormatArgs": ARGS,
                "mountOptions": st.just(["X-mount.mkdir"]) | MOUNT_OPTIONS,
                "uuid": st.sampled_from(GUIDS),
                "passwordFile": st.just("/run/partitioning-secrets/bcachefs"),
            },
        )
        self.maybe_mountpoint(node)
        subvolumes: dict[str, Any] = {}
        for key in self.draw(st.lists(KEY, max_size=2, unique=True)):
            sub: dict[str, Any] = {}
            self.some(
                sub,
                {
                    "type": st.just("bcachefs_subvolume"),
                    "name": st.just(key),
                    "mountOptions": st.none() | MOUNT_OPTIONS,
                },
            )
            self.maybe_mountpoint(sub, root=False)  # check() does not count bcachefs subvolume mounts
            subvolumes[key] = sub
        if subvolumes or self.coin():
            node["subvolumes"] = subvolumes
        return node

    def nodev(self, devices: dict[str, Any]) -> None:
        for _ in range(self.draw(st.integers(0, 2))):
            node = self.hooks({"fsType": self.draw(st.sampled_from(["tmpfs", "proc", "ramfs"]))})
            self.some(node, {"type": st.just("nodev"), "device": st.just("none"), "mountOptions": MOUNT_OPTIONS})
            mountpoint = self.mountpoint()
            if self.coin(3):  # keyed by anything, mounted where `mountpoint` says
                node["mountpoint"] = mountpoint
                devices.setdefault("nodev", {})[f"{node['fsType']}-{len(self.mounts)}"] = node
            else:  # keyed by its mountpoint (disko's default)
                devices.setdefault("nodev", {})[mountpoint] = node


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    """A `disko.devices` that parses and passes `check()` (no boot mode, no disk size)."""
    b = _Builder(draw)
    devices: dict[str, Any] = {"disk": {}}
    for index, key in enumerate(draw(st.lists(KEY, min_size=1, max_size=3, unique=True))):
        devices["disk"][key] = b.disk(index)
    # aggregates the members name; their own contents are leaves, so there are no cycles
    for name in b.members["mdadm"]:
        devices.setdefault("mdadm", {})[name] = b.mdadm(name)
    for name in b.members["lvm_vg"]:
        devices.setdefault("lvm_vg", {})[name] = b.lvm_vg(name)
    for name, count in b.members["zpool"].items():
        devices.setdefault("zpool", {})[name] = b.zpool(name, count)
    for name in b.members["bcachefs_filesystems"]:
        devices.setdefault("bcachefs_filesystems", {})[name] = b.bcachefs_filesystem()
    b.nodev(devices)
    if "/" not in b.mounts:
        devices.setdefault("nodev", {})["/"] = {"fsType": "tmpfs", "mountOptions": ["size=2G", "mode=755"]}
    return devices


# -- nodes of disko.devices data -------------------------------------------------------------------

COLLECTION_KINDS = {
    "disk": "disk",
    "mdadm": "mdadm",
    "zpool": "zpool",
    "lvm_vg": "lvm_vg",
    "nodev": "nodev",
    "bcachefs_filesystems": "bcachefs_filesystem",
}


@dataclass(frozen=True)
class NodeAt:
    """A node of disko.devices data: its path, its dict, its disko type and where it sits (`slot`:
    "device" for top-level devices, else "content", "partition", "dataset", "lv", "subvolume" or
    "swapfile"), with the type of the node holding it."""

    path: tuple[str, ...]
    node: dict[str, Any]
    kind: str
    slot: str
    parent: str | None

    @property
    def at(self) -> str:
        return ".".join(self.path)


def node_paths(devices: dict[str, Any]) -> Iterator[NodeAt]:
    """Every node, parents first."""
    for collection, kind in COLLECTION_KINDS.items():
        for key, node in devices.get(collection, {}).items():
            yield from _nodes(NodeAt((collection, key), node, kind, "device", None))


def _nodes(n: NodeAt) -> Iterator[NodeAt]:
    yield n
    path, node, kind = n.path, n.node, n.kind
    children = {
        "gpt": ("partitions", "partition", lambda _: "partition"),
        "lvm_vg": ("lvs", "lv", lambda _: "lvm_lv"),
        "zpool": ("datasets", "dataset", lambda ds: ds["type"]),
        "btrfs": ("subvolumes", "subvolume", lambda _: "btrfs_subvol"),
        "bcachefs_filesystem": ("subvolumes", "subvolume", lambda _: "bcachefs_subvolume"),
    }
    if kind in children:
        field, slot, kind_of = children[kind]
        for key, sub in node.get(field, {}).items():
            yield from _nodes(NodeAt((*path, field, key), sub, kind_of(sub), slot, kind))
    if kind in ("btrfs", "btrfs_subvol"):
        for key, swapfile in node.get("swap", {}).items():
            yield NodeAt((*path, "swap", key), swapfile, "swapfile", "swapfile", kind)
    if node.get("content") is not None:
        yield from _nodes(NodeAt((*path, "content"), node["content"], node["content"]["type"], "content", kind))
