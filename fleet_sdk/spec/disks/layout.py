"""DiskLayout: a whole `disko.devices`, read from plain data and rendered back exactly.

Pure: reading a layout from a Nix file is the disko engine's (`fleet_sdk.disko.DiskLayout`, a subclass
of this one adding `from_nix_file`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import override

from fleet_sdk.errors import DiskoError, Problem
from fleet_sdk.spec.disks import model
from fleet_sdk.spec.disks.model import (
    BcachefsFilesystem,
    Btrfs,
    Disk,
    Gpt,
    LvmVg,
    Mdadm,
    Nodev,
    Table,
    Zpool,
)

BootMode = Literal["bios", "uefi"]
COLLECTIONS = ("disk", "mdadm", "zpool", "lvm_vg", "nodev", "bcachefs_filesystems")
# content `type` tags, which pydantic puts into error locations of the tagged unions
_TAGS = {
    "gpt",
    "table",
    "filesystem",
    "btrfs",
    "zfs",
    "mdraid",
    "luks",
    "lvm_pv",
    "swap",
    "bcachefs",
    "zfs_fs",
    "zfs_volume",
}


_PATTERNS = {
    model.SIZE_PATTERN: "a size such as 1M, 512M, 1G or 100% (units K M G T P, no 'iB', no decimals)",
    model.TYPE_PATTERN: "an sgdisk type code of 4 hex digits (EF00, EF02, 8300, BF00…) or a GUID",
    model.ABSPATH_PATTERN: "an absolute path starting with /",
    model.SWAPFILE_SIZE_PATTERN: "a size with a unit, such as 2G or 512M",
    model.GUID_PATTERN: "a GUID such as 0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    model.IMAGE_SIZE_PATTERN: "a size such as 2G",
}


_UNION_LABELS = {"TopologyMode", "Vdev", "str", "int", "bool"}


def _is_label(part: int | str, node: Any) -> bool:
    """A name pydantic puts into locations for a union member, not a key of the user's config:
    the discriminating `type` of the node, or a member type's name."""
    if isinstance(node, dict) and part == node.get("type"):
        return True
    return part in _UNION_LABELS or str(part).startswith(("list[", "function-", "literal["))


def _child(node: Any, part: int | str) -> tuple[bool, Any]:
    """(True, child) when `part` is a key of `node` (or an index of a list node)."""
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _node_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The error location as a path of the user's own keys, found by walking the input alongside."""
    parts: list[str] = []
    node = data
    for part in loc:
        found, child = _child(node, part)
        if found:
            node = child
        elif (not isinstance(node, dict | list) and node is not None) or _is_label(part, node):
            continue  # a union member's name (below a scalar, or the node's own type tag)
        parts.append(str(part))  # a key of the input, or one it lacks (a missing required option)
    return ".".join(parts)


_NIX_INT = range(-(2**63), 2**63)  # Nix integers are signed 64-bit


def _not_for_nix(node: Any, path: str = "") -> Iterator[Problem]:
    """Values Nix cannot hold, so disko would read something else from disko.json: integers beyond
    64 bits (read as floats), non-finite floats (written as null), NUL in strings (cut there)."""
    here = path or "disko.devices"
    if isinstance(node, dict):
        for key, child in node.items():
            if "\0" in str(key):
                yield Problem(here, f"the key {key!r} contains a NUL character, which Nix cannot hold")
            yield from _not_for_nix(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _not_for_nix(child, f"{path}.{i}" if path else str(i))
    elif isinstance(node, bool):
        return
    elif isinstance(node, int) and node not in _NIX_INT:
        yield Problem(here, f"{node} is beyond Nix's 64-bit integers; use a value from -2^63 to 2^63-1")
    elif isinstance(node, float) and not math.isfinite(node):
        yield Problem(here, f"{node} is not a finite number, which Nix cannot hold")
    elif isinstance(node, str) and "\0" in node:
        yield Problem(here, "contains a NUL character, which Nix strings cannot hold")


def _problems_of(exc: ValidationError, data: Any) -> list[Problem]:
    out = []
    for err in exc.errors():
        message = err["msg"]
        if err["type"] == "union_tag_invalid":
            message = (
                f"unknown content type {err['input'].get('type')!r} here; use one of {err['ctx']['expected_tags']}"
            )
        elif err["type"] == "extra_forbidden":
            message = f"disko has no option {err['loc'][-1]!r} here"
        elif err["type"] == "string_pattern_mismatch":
            wanted = _PATTERNS.get(err["ctx"]["pattern"], f"a value matching {err['ctx']['pattern']}")
            message = f"{err['input']!r} is not valid here: expected {wanted}"
        elif err["type"] == "missing":
            message = "required option is missing"
        out.append(Problem(_node_path(err["loc"], data), message))
    return out


class DiskLayout(BaseModel):
    """`disko.devices`: the six collections of top-level devices, keyed by the user's names."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    disk: dict[str, Disk] = Field(default_factory=dict)
    mdadm: dict[str, Mdadm] = Field(default_factory=dict)
    zpool: dict[str, Zpool] = Field(default_factory=dict)
    lvm_vg: dict[str, LvmVg] = Field(default_factory=dict)
    nodev: dict[str, Nodev] = Field(default_factory=dict)
    bcachefs_filesystems: dict[str, BcachefsFilesystem] = Field(default_factory=dict)

    @classmethod
    def from_disko(cls, devices: dict[str, Any], source: str | None = None) -> Self:
        """From `disko.devices` (or a `{"disko": {"devices": …}}` wrapper) as plain data."""
        if set(devices) == {"disko"} and isinstance(devices["disko"], dict):
            devices = devices["disko"].get("devices", {})
        if problems := list(_not_for_nix(devices)):
            raise DiskoError(problems, source)
        try:
            return cls.model_validate(devices)
        except ValidationError as e:
            raise DiskoError(_problems_of(e, devices), source) from None

    def to_disko(self) -> dict[str, Any]:
        """Exactly the options that were set, plus the `type` tags disko requires."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)

    def render(self) -> str:
        """Canonical bytes of machines/<m>/disko.json: sorted keys, 2-space indent, final newline."""
        devices = self.to_disko()
        if problems := list(_not_for_nix(devices)):  # a layout built in Python skips from_disko
            raise DiskoError(problems)
        return json.dumps(devices, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @override
    def __eq__(self, other: object) -> bool:
        # pydantic compares the class too; the engine's subclass (fleet_sdk.disko) adds only a way to
        # read a layout, so a layout equals the same declaration read by either class
        if isinstance(other, DiskLayout) and type(other) is not type(self):
            return self.__dict__ == other.__dict__
        return super().__eq__(other)

    # checks and the partition plan live in their own modules; these are the public entry points
    def check(self, boot: BootMode | None = None, disk_bytes: int | None = None) -> list[Problem]:
        from fleet_sdk.spec.disks.checks import check_layout

        return check_layout(self, boot, disk_bytes)

    def partition_plan(self, disk_name: str, disk_bytes: int) -> list[Any]:
        from fleet_sdk.spec.disks.partitions import partition_plan

        return partition_plan(self, disk_name, disk_bytes)

    # -- traversal shared by checks and renderers -----------------------------------------

    def walk(self) -> Iterator[tuple[str, Any]]:
        """Every node with its path (`disk.main.content.partitions.root.content`), parents first."""
        for collection in COLLECTIONS:
            for name, node in getattr(self, collection).items():
                yield from _walk(f"{collection}.{name}", node)


def _walk(path: str, node: Any) -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, Gpt):
        for key, part in node.partitions.items():
            yield from _walk(f"{path}.partitions.{key}", part)
        return
    if isinstance(node, Table):
        for i, legacy in enumerate(node.partitions):
            yield from _walk(f"{path}.partitions.{i}", legacy)
        return
    if isinstance(node, Zpool):
        for key, ds in node.datasets.items():
            yield from _walk(f"{path}.datasets.{key}", ds)
        return
    if isinstance(node, LvmVg):
        for key, lv in node.lvs.items():
            yield from _walk(f"{path}.lvs.{key}", lv)
        return
    if isinstance(node, Btrfs | BcachefsFilesystem):
        for key, sub in node.subvolumes.items():
            yield path + f".subvolumes.{key}", sub
    content = getattr(node, "content", None)
    if content is not None:
        yield from _walk(f"{path}.content", content)
